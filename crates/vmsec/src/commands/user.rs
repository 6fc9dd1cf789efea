//! `vmsec user …`: the users who may call the WS-Management endpoint.

use std::io::Read;

use serde_json::json;
use vmsec_store::Role;
use zeroize::Zeroizing;

use super::Ctx;
use crate::CliError;
use crate::cli::{RoleArg, UserCmd};
use crate::output;

impl Ctx<'_> {
    pub(super) fn user(&self, c: UserCmd) -> Result<(), CliError> {
        match c {
            UserCmd::Add { name, role, .. } => {
                let password = password_from_stdin()?;
                let role = role_of(role);
                self.service.add_user(self.me, &name, role, &password)?;
                self.out.either(
                    || format!("added user {name} ({role})"),
                    || json!({ "ok": true, "user": { "name": name, "role": role } }),
                )
            }
            UserCmd::Passwd { name, .. } => {
                let password = password_from_stdin()?;
                self.service.set_user_password(self.me, &name, &password)?;
                self.out.either(
                    || format!("changed the password of user {name}"),
                    || json!({ "ok": true }),
                )
            }
            UserCmd::Role { name, role } => {
                let role = role_of(role);
                self.service.set_user_role(self.me, &name, role)?;
                self.out.either(
                    || format!("user {name} is now {role}"),
                    || json!({ "ok": true, "user": { "name": name, "role": role } }),
                )
            }
            UserCmd::List => {
                let users = self.service.users(self.me)?;
                self.out.either(
                    || {
                        users
                            .iter()
                            .map(|u| format!("{:<24} {}\n", output::text(&u.name), u.role))
                            .collect()
                    },
                    || json!(users.iter().map(output::user_json).collect::<Vec<_>>()),
                )
            }
            UserCmd::Remove { name } => {
                self.service.remove_user(self.me, &name)?;
                self.out
                    .either(|| format!("removed user {name}"), || json!({ "ok": true }))
            }
        }
    }
}

/// A password from standard input (at most 4 KiB), without its final line ending. When standard
/// input is a terminal, a person is typing: it is asked for twice, without echo, from the
/// terminal, rather than read (and shown) up to an end of file they would not know to type.
pub(super) fn password_from_stdin() -> Result<Zeroizing<String>, CliError> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map(Zeroizing::new)
                .map_err(|e| {
                    CliError::new(format!("cannot read the password from the terminal: {e}"))
                })
        };
        let first = ask("Password: ")?;
        if first.is_empty() {
            return Err(CliError::new("the password is empty"));
        }
        if *ask("Again: ")? != *first {
            return Err(CliError::new(
                "the two passwords differ; nothing was changed",
            ));
        }
        return Ok(first);
    }
    let mut password = Zeroizing::new(String::new());
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut password)
        .map_err(|e| CliError::new(format!("cannot read the password from standard input: {e}")))?;
    let line = password.strip_suffix('\n').unwrap_or(&password);
    let end = line.strip_suffix('\r').unwrap_or(line).len();
    password.truncate(end);
    Ok(password)
}

fn role_of(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Admin => Role::Admin,
        RoleArg::Operator => Role::Operator,
        RoleArg::Reader => Role::Reader,
    }
}
