//! A new database file filled with given rows instead of the demo data:
//! how the load tool (`calendar-load`) starts every run from the same
//! dataset.

use std::path::Path;

use rusqlite::{params, Connection};

use super::{Calendar, Db, DbError, Item};

/// The rows a new database starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// Every calendar, with its id.
    pub calendars: Vec<Calendar>,
    /// `(user, calendar id)`: who sees which calendar in their feed.
    pub members: Vec<(String, i64)>,
    /// The items, with their ids.
    pub items: Vec<Item>,
}

impl Db {
    /// Creates the database file `path` holding exactly `seed` (no demo
    /// data), in one transaction. A file that already exists is an error and
    /// is left as it is.
    pub fn create_seeded(path: &Path, seed: &Seed) -> Result<Db, DbError> {
        if path.exists() {
            return Err(DbError::Invalid(format!(
                "{} already exists; a seeded database is always a new file",
                path.display()
            )));
        }
        let mut conn = Connection::open(path)?;
        super::prepare(&conn, true)?;
        let tx = conn.transaction()?;
        {
            let mut cal = tx.prepare("INSERT INTO calendars (id, name, color) VALUES (?1, ?2, ?3)")?;
            for c in &seed.calendars {
                cal.execute(params![c.id, c.name, c.color])?;
            }
            let mut member = tx.prepare("INSERT INTO members (user, calendar_id) VALUES (?1, ?2)")?;
            for (user, calendar) in &seed.members {
                member.execute(params![user, calendar])?;
            }
            let mut item = tx.prepare(
                "INSERT INTO items (id, calendar_id, title, work_type, status, start, end)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for i in &seed.items {
                i.as_input().validate()?;
                item.execute(params![
                    i.id,
                    i.calendar_id,
                    i.title,
                    i.work_type,
                    i.status,
                    i.start.to_string(),
                    i.end.to_string()
                ])?;
            }
        }
        tx.commit()?;
        Ok(Db::from_connection(conn))
    }
}

impl Item {
    /// The item's fields as a client sends them.
    pub fn as_input(&self) -> super::ItemInput {
        super::ItemInput {
            calendar_id: self.calendar_id,
            title: self.title.clone(),
            work_type: self.work_type.clone(),
            status: self.status.clone(),
            start: self.start,
            end: self.end,
        }
    }
}
