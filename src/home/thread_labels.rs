//! What a person knows a thread by, as Codex's thread index keeps it: its title, the
//! first thing the user asked, and the project folder it ran in. Read without writing to
//! the home (`sqlite_read`); an index without these columns simply yields none of them.

use anyhow::Result;
use std::collections::HashMap;

use super::thread_index::ThreadIndex;

/// Codex stores the whole first prompt, which may be pages long; a listing shows a line
/// of it and a text match looks at its start.
pub const FIRST_MESSAGE_CHARS: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadLabel {
    pub title: Option<String>,
    pub first_message: Option<String>,
    /// Shared between the threads of one project: a heavy home has 100,000 threads and a
    /// few dozen folders.
    pub cwd: Option<std::sync::Arc<str>>,
    /// When Codex last wrote to the thread (Unix seconds).
    pub updated_at: Option<i64>,
}

/// Labels keyed by the id's 128 bits (a heavy home has 100,000 threads), or by its text
/// for an id that is not a uuid.
#[derive(Default)]
pub struct ThreadLabels {
    by_uuid: HashMap<u128, ThreadLabel>,
    by_text: HashMap<String, ThreadLabel>,
}

impl ThreadLabels {
    pub fn read(index: &ThreadIndex) -> Result<ThreadLabels> {
        let db = crate::sqlite_read::open(&index.path)?;
        Self::read_with(index, &db.conn)
    }

    /// `read`, through a connection the caller already holds (one open for several reads).
    pub fn read_with(index: &ThreadIndex, conn: &rusqlite::Connection) -> Result<ThreadLabels> {
        let column = |name: &str| {
            if index.has_column(name) {
                name.to_string()
            } else {
                "NULL".to_string()
            }
        };
        let first_message = if index.has_column("first_user_message") {
            format!("substr(first_user_message, 1, {FIRST_MESSAGE_CHARS})")
        } else {
            "NULL".to_string()
        };
        let sql = format!(
            "SELECT id, {}, {first_message}, {}, {} FROM threads",
            column("title"),
            column("cwd"),
            column("updated_at")
        );
        let mut labels = ThreadLabels::default();
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        // A column Codex declares TEXT may still hold another type; such a value is no label.
        let text = |r: &rusqlite::Row<'_>, i: usize| -> Option<String> {
            r.get::<_, Option<String>>(i)
                .ok()
                .flatten()
                .filter(|t| !t.trim().is_empty())
        };
        let mut folders: std::collections::HashSet<std::sync::Arc<str>> = Default::default();
        while let Some(r) = rows.next()? {
            let id: String = r.get::<_, String>(0)?.to_ascii_lowercase();
            let label = ThreadLabel {
                title: text(r, 1),
                first_message: text(r, 2),
                cwd: text(r, 3).map(|cwd| match folders.get(cwd.as_str()) {
                    Some(known) => known.clone(),
                    None => {
                        let new: std::sync::Arc<str> = cwd.into();
                        folders.insert(new.clone());
                        new
                    }
                }),
                updated_at: r.get::<_, Option<i64>>(4).ok().flatten(),
            };
            match uuid::Uuid::parse_str(&id) {
                Ok(u) => {
                    labels.by_uuid.insert(u.as_u128(), label);
                }
                Err(_) => {
                    labels.by_text.insert(id, label);
                }
            }
        }
        Ok(labels)
    }

    pub fn get(&self, id: &str) -> Option<&ThreadLabel> {
        match uuid::Uuid::parse_str(id) {
            Ok(u) => self.by_uuid.get(&u.as_u128()),
            Err(_) => self.by_text.get(&id.to_ascii_lowercase()),
        }
    }

    /// The label of `id`, taken out: a listing moves each one into its row, once.
    pub fn take(&mut self, id: &str) -> Option<ThreadLabel> {
        match uuid::Uuid::parse_str(id) {
            Ok(u) => self.by_uuid.remove(&u.as_u128()),
            Err(_) => self.by_text.remove(&id.to_ascii_lowercase()),
        }
    }

    pub fn len(&self) -> usize {
        self.by_uuid.len() + self.by_text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
