//! The crate's error: a machine-usable [`ErrorKind`] plus where it happened.

use std::fmt;

use crate::schema::SchemaError;

/// What went wrong, for callers that map errors to return codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text ended before the instance was complete.
    Truncated,
    /// XML or MOF that is not well-formed (unbalanced tags, stray characters, bad escapes).
    Syntax,
    /// A DOCTYPE, an entity declaration or a reference to an undeclared entity.
    DtdOrEntityNotAllowed,
    /// Well-formed text whose structure is not a CIM instance (missing element, missing attribute).
    Structure,
    /// A `TYPE` attribute or MOF type that names no CIM type.
    UnknownType,
    /// A value whose text does not parse as its declared type (`abc` for a uint8).
    InvalidValue,
    /// A numeric value outside its type's range (`300` for a uint8).
    OutOfRange,
    /// A malformed CIM datetime.
    InvalidDateTime,
    /// A malformed object path (reference).
    InvalidReference,
    /// The input exceeds [`crate::limits::MAX_INPUT_BYTES`].
    TooLarge,
    /// Nesting deeper than [`crate::limits::MAX_DEPTH`].
    TooDeep,
    /// More than [`crate::limits::MAX_PROPERTIES`] properties.
    TooManyProperties,
    /// An array longer than [`crate::limits::MAX_ARRAY_LEN`].
    ArrayTooLong,
    /// A string longer than [`crate::limits::MAX_STRING_BYTES`].
    StringTooLong,
    /// Bytes that are not valid UTF-8 / UTF-16 text.
    Encoding,
    /// Text that is none of the supported codecs.
    UnknownCodec,
    /// The same property appears twice.
    DuplicateProperty,
    /// The instance violates its class definition (see [`Error::schema_error`]).
    Schema,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Truncated => "unexpected end of input",
            ErrorKind::Syntax => "syntax error",
            ErrorKind::DtdOrEntityNotAllowed => "DTD/entity not allowed",
            ErrorKind::Structure => "not a CIM instance",
            ErrorKind::UnknownType => "unknown CIM type",
            ErrorKind::InvalidValue => "invalid value",
            ErrorKind::OutOfRange => "value out of range",
            ErrorKind::InvalidDateTime => "invalid CIM datetime",
            ErrorKind::InvalidReference => "invalid object path",
            ErrorKind::TooLarge => "input too large",
            ErrorKind::TooDeep => "nesting too deep",
            ErrorKind::TooManyProperties => "too many properties",
            ErrorKind::ArrayTooLong => "array too long",
            ErrorKind::StringTooLong => "string too long",
            ErrorKind::Encoding => "invalid text encoding",
            ErrorKind::UnknownCodec => "unknown embedded-instance format",
            ErrorKind::DuplicateProperty => "duplicate property",
            ErrorKind::Schema => "schema violation",
        }
    }
}

/// A 1-based line and column in the parsed text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

impl Position {
    /// The position of byte offset `offset` within `text` (clamped to the text).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut line = 1u32;
        let mut column = 1u32;
        for (i, c) in text.char_indices() {
            if i >= offset {
                break;
            }
            if c == '\n' {
                line = line.saturating_add(1);
                column = 1;
            } else {
                column = column.saturating_add(1);
            }
        }
        Position { line, column }
    }
}

/// Why an embedded instance could not be read. Displays the kind, a detail, and where.
///
/// Details never quote more than a short prefix of the offending value.
#[derive(Clone, Debug, PartialEq)]
pub struct Error(Box<Inner>);

/// Boxed so that `Result<T, Error>` stays one pointer wide on the happy path.
#[derive(Clone, Debug, PartialEq)]
struct Inner {
    kind: ErrorKind,
    detail: String,
    position: Option<Position>,
    property: Option<String>,
    schema: Option<SchemaError>,
}

impl Error {
    /// A new error of `kind` with a human-readable `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            detail: detail.into(),
            position: None,
            property: None,
            schema: None,
        }))
    }

    /// Attaches the text position, keeping one already set (the innermost is most precise).
    pub fn at(mut self, position: Position) -> Self {
        if self.0.position.is_none() {
            self.0.position = Some(position);
        }
        self
    }

    /// Attaches the property being read, keeping one already set.
    pub fn in_property(mut self, name: &str) -> Self {
        if self.0.property.is_none() {
            self.0.property = Some(name.to_owned());
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// Human-readable detail, without position.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// Where in the text, when known.
    pub fn position(&self) -> Option<Position> {
        self.0.position
    }

    /// The property being read, when known.
    pub fn property(&self) -> Option<&str> {
        self.0.property.as_deref()
    }

    /// The schema violation, for [`ErrorKind::Schema`].
    pub fn schema_error(&self) -> Option<&SchemaError> {
        self.0.schema.as_ref()
    }
}

impl From<SchemaError> for Error {
    fn from(e: SchemaError) -> Self {
        let property = e.property().map(str::to_owned);
        Error(Box::new(Inner {
            kind: ErrorKind::Schema,
            detail: e.to_string(),
            position: None,
            property,
            schema: Some(e),
        }))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        write!(f, "{}", e.kind.describe())?;
        if !e.detail.is_empty() {
            write!(f, ": {}", e.detail)?;
        }
        if let Some(p) = &e.property {
            write!(f, " (property {p})")?;
        }
        if let Some(pos) = e.position {
            write!(f, " at line {}, column {}", pos.line, pos.column)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// A short, safe excerpt of hostile text for error details.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 32;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}
