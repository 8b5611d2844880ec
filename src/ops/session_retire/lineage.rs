//! Forks and the threads they read from. A fork's first record names its parent
//! (`history_base`), and Codex reads the fork's early turns from the parent's rows: a
//! parent taken out while a fork stays breaks the fork. So a parent goes only with all of
//! its descendants, and a descendant comes back with the ancestors it reads from.

use std::collections::{HashMap, HashSet};

/// Which thread each fork in a home reads from.
#[derive(Debug, Default, Clone)]
pub struct Lineage {
    parent_of: HashMap<String, String>,
}

impl Lineage {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Lineage {
        Lineage {
            parent_of: pairs.into_iter().collect(),
        }
    }

    pub fn parent_of(&self, thread: &str) -> Option<&str> {
        self.parent_of.get(thread).map(String::as_str)
    }

    /// Forks that stay in the home while the thread they read from would go: `(parent,
    /// fork)` for each fork outside `going` whose parent is in it.
    pub fn forks_left_behind(&self, going: &HashSet<&str>) -> Vec<(String, String)> {
        let mut left: Vec<(String, String)> = self
            .parent_of
            .iter()
            .filter(|(fork, parent)| {
                going.contains(parent.as_str()) && !going.contains(fork.as_str())
            })
            .map(|(fork, parent)| (parent.clone(), fork.clone()))
            .collect();
        left.sort();
        left
    }

    /// `thread` has left the home: it no longer holds its parent there.
    pub fn forget(&mut self, thread: &str) {
        self.parent_of.remove(thread);
    }

    /// How many threads `thread` descends from.
    pub fn depth(&self, thread: &str) -> usize {
        let mut depth = 0;
        let mut current = thread;
        while let Some(parent) = self.parent_of(current) {
            depth += 1;
            current = parent;
            if depth > self.parent_of.len() {
                break;
            }
        }
        depth
    }

    /// Every thread that has a fork in the home (directly), for the planner's protection.
    pub fn parents(&self) -> HashSet<&str> {
        self.parent_of.values().map(String::as_str).collect()
    }

    /// `thread` and every thread that forks from it, at any depth.
    pub fn with_descendants(&self, thread: &str) -> Vec<String> {
        let mut found = vec![thread.to_string()];
        let mut i = 0;
        while i < found.len() {
            let current = found[i].clone();
            let mut forks: Vec<String> = self
                .parent_of
                .iter()
                .filter(|(_, p)| **p == current)
                .map(|(f, _)| f.clone())
                .filter(|f| !found.contains(f))
                .collect();
            forks.sort();
            found.extend(forks);
            i += 1;
        }
        found
    }
}

/// The forks among the transcripts of `home` (active and archived), read from their first
/// records.
pub fn of_home(home: &std::path::Path) -> anyhow::Result<Lineage> {
    let home = crate::home::CodexHome {
        root: home.to_path_buf(),
    };
    let (files, _) = crate::home::sessions::scan(&home);
    Ok(of_files(&files))
}

/// The forks among `files`, a scan the caller already holds.
pub fn of_files(files: &[crate::home::sessions::SessionFile]) -> Lineage {
    use rayon::prelude::*;
    let pairs: Vec<(String, String)> = files
        .par_iter()
        .filter(|f| !f.is_symlink)
        .filter_map(|f| crate::home::sessions::read_session_meta(&f.path).ok())
        .filter_map(|meta| meta.forks_from.map(|parent| (meta.id, parent)))
        .collect();
    Lineage::from_pairs(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lineage() -> Lineage {
        Lineage::from_pairs([
            ("child".to_string(), "parent".to_string()),
            ("grandchild".to_string(), "child".to_string()),
        ])
    }

    #[test]
    fn a_parent_cannot_go_while_any_descendant_stays() {
        let l = lineage();
        assert_eq!(
            l.forks_left_behind(&HashSet::from(["parent"])),
            [("parent".to_string(), "child".to_string())]
        );
        assert_eq!(
            l.forks_left_behind(&HashSet::from(["parent", "child"])),
            [("child".to_string(), "grandchild".to_string())]
        );
        assert!(
            l.forks_left_behind(&HashSet::from(["parent", "child", "grandchild"]))
                .is_empty()
        );
        assert!(
            l.forks_left_behind(&HashSet::from(["grandchild"]))
                .is_empty()
        );
    }

    #[test]
    fn descendants_are_found_at_any_depth() {
        assert_eq!(
            lineage().with_descendants("parent"),
            ["parent", "child", "grandchild"]
        );
    }
}
