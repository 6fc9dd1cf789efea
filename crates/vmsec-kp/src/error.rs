//! The one error type of this crate.
//!
//! Every variant names what a user needs to act on: which wrapping (by `Id`),
//! which signature, which rule, which algorithm URI. No variant ever carries
//! key material.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The signatures a key protector or a guardian's metadata carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    /// A wrapping's `SigningCertificateSignature` (parent's signing key over this signing certificate).
    SigningCertificate,
    /// A wrapping's `EncryptionCertificateSignature` (own signing key over the encryption certificate).
    EncryptionCertificate,
    /// The protector's `GuardianSignature` over canonical `<Wrappings>`.
    Guardian,
    /// The protector's `TransportKeySignature` (HMAC under a key derived from the transport key).
    TransportKey,
    /// Metadata `SigningCertificateSelfSignature`.
    SigningCertificateSelf,
    /// The XML-DSig `ds:Signature` over a metadata document.
    MetadataDocument,
}

impl fmt::Display for SignatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SigningCertificate => "SigningCertificateSignature",
            Self::EncryptionCertificate => "EncryptionCertificateSignature",
            Self::Guardian => "GuardianSignature",
            Self::TransportKey => "TransportKeySignature",
            Self::SigningCertificateSelf => "SigningCertificateSelfSignature",
            Self::MetadataDocument => "metadata ds:Signature",
        })
    }
}

/// Which of a guardian's two certificates an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// The certificate whose key wraps the transport key.
    Encryption,
    /// The certificate whose key signs.
    Signing,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encryption => "encryption certificate",
            Self::Signing => "signing certificate",
        })
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input is larger than the parser accepts.
    #[error("input is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Elements are nested deeper than the parser accepts.
    #[error("XML nesting deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The input has a document type declaration (DTD) or entity declarations; refused always.
    #[error("XML document type declarations (DOCTYPE/ENTITY) are not accepted")]
    DtdForbidden,
    /// The input is not well-formed XML (or not UTF-8).
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// An element is in the wrong namespace.
    #[error("element <{element}> must be in namespace {expected}, found {}", found.as_deref().unwrap_or("no namespace"))]
    WrongNamespace {
        /// Local name of the element.
        element: String,
        /// Namespace it should have.
        expected: &'static str,
        /// Namespace it has.
        found: Option<String>,
    },
    /// An element appeared where the schema expects another one (or nothing).
    #[error("in <{parent}>: expected {expected}, found <{found}>")]
    UnexpectedElement {
        /// The enclosing element.
        parent: String,
        /// What the schema allows at this point.
        expected: String,
        /// The element found.
        found: String,
    },
    /// A required element is missing.
    #[error("in <{parent}>: missing <{expected}>")]
    MissingElement {
        /// The enclosing element.
        parent: String,
        /// The element the schema requires.
        expected: String,
    },
    /// An attribute the schema does not allow.
    #[error("<{element}> has unexpected attribute {attribute}")]
    UnexpectedAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: String,
    },
    /// A required attribute is missing.
    #[error("<{element}> is missing attribute {attribute}")]
    MissingAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: String,
    },
    /// Character data where the schema allows only elements.
    #[error("<{element}> has unexpected text content")]
    UnexpectedText {
        /// The element.
        element: String,
    },
    /// A value is not a valid xs:unsignedInt.
    #[error("<{element}>: {value:?} is not an unsigned 32-bit integer")]
    InvalidNumber {
        /// Element or attribute name.
        element: String,
        /// The text found (never secret: ids and counters only).
        value: String,
    },
    /// A value is not valid base64.
    #[error("<{element}> is not valid base64")]
    InvalidBase64 {
        /// The element.
        element: String,
    },
    /// Two wrappings share an `Id`.
    #[error("duplicate wrapping Id {id}")]
    DuplicateWrappingId {
        /// The repeated Id.
        id: u32,
    },
    /// An `Algorithm` URI vmsec does not implement.
    #[error("<{element}>: unsupported algorithm {uri}")]
    UnsupportedAlgorithm {
        /// The element carrying the `Algorithm` attribute.
        element: String,
        /// The URI.
        uri: String,
    },
    /// Algorithm parameters vmsec does not implement or that contradict each other.
    #[error("<{element}>: unsupported parameters: {detail}")]
    UnsupportedParameters {
        /// The element whose `Parameters` are refused.
        element: String,
        /// What is wrong.
        detail: String,
    },
    /// No wrapping is its own parent.
    #[error("the protector has no owner (no wrapping whose ParentWrappingId is its own Id)")]
    NoOwner,
    /// More than one wrapping is its own parent.
    #[error("the protector has more than one owner: wrappings {ids:?}")]
    MultipleOwners {
        /// The self-parented wrappings.
        ids: Vec<u32>,
    },
    /// A `ParentWrappingId` names no wrapping of this protector.
    #[error("wrapping {wrapping}: ParentWrappingId {parent} names no wrapping")]
    UnknownParent {
        /// The child wrapping.
        wrapping: u32,
        /// The missing parent.
        parent: u32,
    },
    /// Following parents from this wrapping loops without reaching the owner.
    #[error("wrapping {wrapping}: parent chain has a cycle and never reaches the owner")]
    ParentCycle {
        /// A wrapping on the cycle path.
        wrapping: u32,
    },
    /// A certificate does not parse as X.509 or its key is not usable.
    #[error("{}{role}: {detail}", wrapping.map(|w| format!("wrapping {w}: ")).unwrap_or_default())]
    InvalidCertificate {
        /// The wrapping holding it, if it came from a protector.
        wrapping: Option<u32>,
        /// Which certificate.
        role: CertRole,
        /// What is wrong.
        detail: String,
    },
    /// A certificate's key usage extension forbids its role.
    #[error("{}{role} lacks key usage {usage}", wrapping.map(|w| format!("wrapping {w}: ")).unwrap_or_default())]
    WrongKeyUsage {
        /// The wrapping holding it, if any.
        wrapping: Option<u32>,
        /// Which certificate.
        role: CertRole,
        /// The usage bit it lacks.
        usage: &'static str,
    },
    /// A signature does not verify.
    #[error("{kind}{} does not verify", wrapping.map(|w| format!(" of wrapping {w}")).unwrap_or_default())]
    BadSignature {
        /// Which signature.
        kind: SignatureKind,
        /// The wrapping it belongs to (or, for GuardianSignature, the signer), if any.
        wrapping: Option<u32>,
    },
    /// `GuardianSignature WrappingId` names no wrapping.
    #[error("GuardianSignature names wrapping {id}, which does not exist")]
    UnknownSigner {
        /// The Id named.
        id: u32,
    },
    /// None of the given identities holds the private key of any wrapping.
    #[error("none of the given guardians can unwrap this protector")]
    NoMatchingIdentity,
    /// RSA decryption of a wrapping's transport key failed.
    #[error("wrapping {wrapping}: the transport key does not decrypt with this guardian's key")]
    DecryptionFailed {
        /// The wrapping.
        wrapping: u32,
    },
    /// A decrypted transport key has the wrong length.
    #[error("wrapping {wrapping}: decrypted transport key is {len} bytes, expected 32")]
    TransportKeyLength {
        /// The wrapping.
        wrapping: u32,
        /// The length found.
        len: usize,
    },
    /// The identity given as owner is not the protector's owner.
    #[error("the given guardian is not the owner of this protector")]
    NotOwner,
    /// The guardian already has a wrapping.
    #[error("the guardian already has wrapping {wrapping}")]
    AlreadyGranted {
        /// Its wrapping.
        wrapping: u32,
    },
    /// The guardian has no wrapping to revoke.
    #[error("the guardian has no wrapping in this protector")]
    NotGranted,
    /// The owner's wrapping cannot be revoked.
    #[error("the owner's wrapping cannot be revoked")]
    CannotRevokeOwner,
    /// Revoking would leave a child wrapping without its parent.
    #[error("revoking wrapping {wrapping} would orphan wrapping {child}, whose parent it is")]
    RevokeWouldOrphan {
        /// The wrapping to revoke.
        wrapping: u32,
        /// Its child.
        child: u32,
    },
    /// All wrapping Ids are used.
    #[error("no free wrapping Id left")]
    IdsExhausted,
    /// A private key is needed but the guardian only has certificates.
    #[error("guardian {guardian:?} has no private keys")]
    MissingPrivateKey {
        /// The guardian's name.
        guardian: String,
    },
    /// A private key does not belong to the certificate it is paired with.
    #[error("the private key does not match the {role}")]
    KeyMismatch {
        /// Which certificate.
        role: CertRole,
    },
    /// A private key cannot be read.
    #[error("invalid {role} private key: {detail}")]
    InvalidPrivateKey {
        /// Which key.
        role: CertRole,
        /// What is wrong (never key bytes).
        detail: String,
    },
    /// PEM text is malformed or has the wrong label.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// A metadata document's reference or digest does not match.
    #[error("metadata ds:Signature: {0}")]
    MetadataSignature(String),
    /// A guardian name cannot be used (empty or with control characters).
    #[error("invalid guardian name: {0}")]
    InvalidName(String),
    /// The crypto library failed where it should not (key generation, RNG).
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}
