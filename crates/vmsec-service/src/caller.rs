//! Who calls, and what their role lets them do.

use vmsec_store::Role;

use crate::ServiceError;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// The local administrator using the CLI. Reading and writing the data directory is
    /// already full control over it, so the CLI acts with the admin role, under the name of
    /// the operating-system user for the audit log.
    pub fn local_admin() -> Caller {
        Caller {
            name: format!("local:{}", os_user()),
            role: Role::Admin,
        }
    }

    pub(crate) fn require(&self, role: Role, what: &str) -> Result<(), ServiceError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ServiceError::AccessDenied(format!(
                "{what} needs the {role} role; {} has {}",
                self.name, self.role
            )))
        }
    }
}

/// The operating-system user running this process, from the kernel's view of the real uid
/// (not `$USER`, which the caller controls).
fn os_user() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        });
    let Some(uid) = uid else {
        return "unknown".into();
    };
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_owned())
        })
    });
    name.unwrap_or_else(|| format!("uid {uid}"))
}
