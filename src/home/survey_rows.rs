//! The thread index as a survey of the whole home holds it: every row, but only what
//! judging a transcript and spotting drift need (path, archived, pinned, times), keyed by
//! the id's 128 bits. A heavy home has 100,000 rows; full rows with titles, folders and
//! branches, keyed by strings, took 45 MB of the survey's memory, these take about 15.

use anyhow::Result;
use rusqlite::Connection;
use std::collections::HashMap;

use super::thread_index::{ThreadIndex, ThreadRow};

struct Kept {
    rollout_path: Box<str>,
    archived: i64,
    archived_at: Option<i64>,
    is_pinned: bool,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

#[derive(Default)]
pub struct SurveyRows {
    by_uuid: HashMap<u128, Kept>,
    /// Ids that are not uuids (none that Codex writes), kept by their text.
    by_text: HashMap<String, Kept>,
}

fn uuid_key(id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(id).ok().map(|u| u.as_u128())
}

impl SurveyRows {
    pub fn read(index: &ThreadIndex) -> Result<SurveyRows> {
        let db = crate::sqlite_read::open(&index.path)?;
        Self::read_with(index, &db.conn)
    }

    /// `read`, through a connection the caller already holds (one open for several reads).
    pub fn read_with(index: &ThreadIndex, conn: &Connection) -> Result<SurveyRows> {
        let mut rows = SurveyRows::default();
        index.for_each_row(conn, |row| {
            let id = row.id.to_ascii_lowercase();
            let kept = Kept {
                rollout_path: row.rollout_path.into_boxed_str(),
                archived: row.archived,
                archived_at: row.archived_at,
                is_pinned: row.is_pinned,
                created_at: row.created_at,
                updated_at: row.updated_at,
            };
            match uuid_key(&id) {
                Some(key) => {
                    rows.by_uuid.insert(key, kept);
                }
                None => {
                    rows.by_text.insert(id, kept);
                }
            }
        })?;
        Ok(rows)
    }

    pub fn len(&self) -> usize {
        self.by_uuid.len() + self.by_text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row of `id`, with the fields a survey keeps (title, folder and git are `None`).
    pub fn get(&self, id: &str) -> Option<ThreadRow> {
        let kept = match uuid_key(id) {
            Some(key) => self.by_uuid.get(&key),
            None => self.by_text.get(id),
        }?;
        Some(row_of(id.to_ascii_lowercase(), kept))
    }

    pub fn contains(&self, id: &str) -> bool {
        match uuid_key(id) {
            Some(key) => self.by_uuid.contains_key(&key),
            None => self.by_text.contains_key(id),
        }
    }

    /// Every row as (lowercase id, rollout path).
    pub fn paths(&self) -> impl Iterator<Item = (String, &str)> + '_ {
        let by_uuid = self
            .by_uuid
            .iter()
            .map(|(k, v)| (uuid::Uuid::from_u128(*k).to_string(), &*v.rollout_path));
        let by_text = self
            .by_text
            .iter()
            .map(|(k, v)| (k.clone(), &*v.rollout_path));
        by_uuid.chain(by_text)
    }
}

fn row_of(id: String, kept: &Kept) -> ThreadRow {
    ThreadRow {
        id,
        rollout_path: kept.rollout_path.to_string(),
        archived: kept.archived,
        archived_at: kept.archived_at,
        is_pinned: kept.is_pinned,
        created_at: kept.created_at,
        updated_at: kept.updated_at,
        title: None,
        cwd: None,
        source: None,
        git_branch: None,
        git_sha: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_survey_rows_answer_as_the_full_rows_do_for_what_they_keep() {
        let dir = tempfile::tempdir().unwrap();
        let specs: Vec<_> = (0..50)
            .map(|i| {
                let mut s = crate::testkit::synthetic_home::SessionSpec::aged(i, 20.0, 500);
                s.archived = i % 3 == 0;
                s.pinned = i % 7 == 0;
                s
            })
            .collect();
        crate::testkit::synthetic_home::build(dir.path(), &specs, true).unwrap();
        let home = crate::home::CodexHome {
            root: dir.path().to_path_buf(),
        };
        let index = match crate::home::thread_index::detect(&home) {
            crate::home::thread_index::IndexState::Understood(i) => i,
            _ => panic!("the generated index is understood"),
        };
        let full = index.read_all().unwrap();
        let survey = SurveyRows::read(&index).unwrap();
        assert_eq!(survey.len(), full.len());
        for (id, row) in &full {
            let kept = survey.get(id).unwrap();
            assert_eq!(
                (
                    &kept.rollout_path,
                    kept.archived,
                    kept.archived_at,
                    kept.is_pinned
                ),
                (
                    &row.rollout_path,
                    row.archived,
                    row.archived_at,
                    row.is_pinned
                )
            );
            assert_eq!(
                (kept.created_at, kept.updated_at),
                (row.created_at, row.updated_at)
            );
            assert!(survey.contains(&id.to_ascii_uppercase()) || uuid_key(id).is_none());
        }
        let mut paths: Vec<(String, String)> =
            survey.paths().map(|(i, p)| (i, p.to_string())).collect();
        paths.sort();
        let mut expected: Vec<(String, String)> = full
            .values()
            .map(|r| (r.id.clone(), r.rollout_path.clone()))
            .collect();
        expected.sort();
        assert_eq!(paths, expected);
        assert!(survey.get("00000000-0000-7000-8000-000000000000").is_none());
    }
}
