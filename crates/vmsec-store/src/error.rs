/// Why the store could not do what was asked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer held the store longer than the busy timeout.
    #[error("the store is busy: {0}")]
    Busy(String),
    /// The store cannot be reached or read (I/O error, corrupt file, server down).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A record with this key already exists: the write broke a unique key (a primary key or
    /// a `UNIQUE` column), and only that.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The store refused a write for breaking a rule of its schema other than a unique key
    /// (a `CHECK`, a foreign key, a `NOT NULL`, a trigger): a bug of vmsec or a schema
    /// changed behind its back, never something the caller can fix by choosing another
    /// name. Nothing was written; the same write fails the same way again.
    #[error("the store refused the write: {0}")]
    Constraint(String),
    /// No record with this key.
    #[error("{0} not found")]
    NotFound(String),
    /// Another host holds the VM's vTPM lease: the message names it and when it expires.
    #[error("{0}")]
    LeaseHeld(String),
    /// This host's lease is gone (expired, or taken by another host since).
    #[error("{0}")]
    LeaseLost(String),
    /// The stored data is not what this version of vmsec understands.
    #[error("the store holds invalid data: {0}")]
    Corrupt(String),
}

/// Why a change passed to [`Store::update_vm_security`](crate::Store::update_vm_security)
/// refused to go on; the caller downcasts it back to its own error type.
pub type Rejection = Box<dyn std::error::Error + Send + Sync>;

/// Error of [`Store::update_vm_security`](crate::Store::update_vm_security): the store's own,
/// or the one the change returned.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Rejected(Rejection),
}
