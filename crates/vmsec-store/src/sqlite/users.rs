//! Users and their roles.

use rusqlite::{OptionalExtension, Row, params};

use super::pool::Pool;
use super::values::{invalid, map_err, time_at, to_us};
use crate::{StoreError, User};

/// The columns [`user_from_row`] reads, in its order.
macro_rules! user_select {
    () => {
        "SELECT name, role, password_hash, created_us FROM users"
    };
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        name: r.get(0)?,
        role: r
            .get::<_, String>(1)?
            .parse()
            .map_err(|m| invalid(1, rusqlite::types::Type::Text, m))?,
        password_hash: r.get(2)?,
        created: time_at(r, 3)?,
    })
}

pub(super) fn add(pool: &Pool, user: &User) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx
            .execute(
                "INSERT INTO users (name, role, password_hash, created_us) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (name) DO NOTHING",
                params![
                    user.name,
                    user.role.as_str(),
                    user.password_hash,
                    to_us(user.created)
                ],
            )
            .map_err(map_err)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!("user {:?}", user.name)));
        }
        Ok(())
    })
}

pub(super) fn get(pool: &Pool, name: &str) -> Result<Option<User>, StoreError> {
    pool.with_conn(|c| get_on(c, name))
}

/// [`get`] on a connection (or in a transaction) the caller holds.
pub(super) fn get_on(c: &rusqlite::Connection, name: &str) -> Result<Option<User>, StoreError> {
    c.prepare_cached(concat!(user_select!(), " WHERE name = ?1"))
        .map_err(map_err)?
        .query_row([name], user_from_row)
        .optional()
        .map_err(map_err)
}

pub(super) fn all(pool: &Pool) -> Result<Vec<User>, StoreError> {
    pool.query_all(concat!(user_select!(), " ORDER BY name"), user_from_row)
}

pub(super) fn remove(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    pool.write(|tx| {
        Ok(tx
            .execute("DELETE FROM users WHERE name = ?1", [name])
            .map_err(map_err)?
            > 0)
    })
}

pub(super) fn update(pool: &Pool, user: &User) -> Result<bool, StoreError> {
    pool.write(|tx| {
        Ok(tx
            .execute(
                "UPDATE users SET role = ?2, password_hash = ?3 WHERE name = ?1",
                params![user.name, user.role.as_str(), user.password_hash],
            )
            .map_err(map_err)?
            > 0)
    })
}
