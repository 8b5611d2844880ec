//! A plan's actions, in the order they were planned. A cleanup of a heavy home plans one
//! action per transcript, 100,000 of them: every action is written to an unlinked
//! temporary file as it is planned and read back a slice at a time, so memory holds each
//! action's id (for the plan's id and for matching a reviewed plan), a count and a byte
//! total per category, and the few actions that are not per transcript.

use anyhow::Result;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Action;
use crate::ops::OpKind;
use crate::report::{LongList, LongListWriter};

/// Categories planned one action per transcript; every other category plans a handful.
pub fn is_per_transcript(category: &str) -> bool {
    category == "sessions" || category == "compress" || category == "retire"
}

#[derive(Debug, Clone)]
struct Tally {
    category: String,
    kind: OpKind,
    count: u64,
    bytes: u64,
}

#[derive(Debug, Clone)]
pub struct ActionList {
    all: LongList,
    few: Vec<Action>,
    /// Each action's id and the digest of the fields it is held to (`Action::terms`).
    sorted_ids: Arc<[(Box<str>, Terms)]>,
    tallies: Vec<Tally>,
}

/// A digest of the fields an action is carried out by; see `Action::terms`.
pub type Terms = [u8; 16];

pub struct ActionListBuilder {
    all: LongListWriter,
    few: Vec<Action>,
    ids: Vec<(Box<str>, Terms)>,
    tallies: Vec<Tally>,
    set_aside_items: Vec<PathBuf>,
    set_aside: Vec<Action>,
}

impl ActionListBuilder {
    pub fn new() -> Result<ActionListBuilder> {
        Ok(ActionListBuilder {
            all: LongListWriter::new()?,
            few: Vec::new(),
            ids: Vec::new(),
            tallies: Vec::new(),
            set_aside_items: Vec::new(),
            set_aside: Vec::new(),
        })
    }

    /// An action on one of `items`, inside one, or holding one is set aside instead of
    /// listed; `finish` hands those back.
    pub fn setting_aside(mut self, items: Vec<PathBuf>) -> ActionListBuilder {
        self.set_aside_items = items;
        self
    }

    pub fn push(&mut self, action: Action) -> Result<()> {
        let item = Path::new(&action.path);
        if self
            .set_aside_items
            .iter()
            .any(|n| n.starts_with(item) || item.starts_with(n))
        {
            self.set_aside.push(action);
            return Ok(());
        }
        self.all.push(&action)?;
        self.ids.push((action.id.as_str().into(), action.terms()));
        match self
            .tallies
            .iter_mut()
            .find(|t| t.category == action.category && t.kind == action.kind)
        {
            Some(t) => {
                t.count += 1;
                t.bytes += action.bytes;
            }
            None => self.tallies.push(Tally {
                category: action.category.clone(),
                kind: action.kind,
                count: 1,
                bytes: action.bytes,
            }),
        }
        if !is_per_transcript(&action.category) {
            self.few.push(action);
        }
        Ok(())
    }

    /// The actions so far that are not per transcript, in the order they were planned.
    pub fn few_so_far(&self) -> &[Action] {
        &self.few
    }

    /// Whether any action of `category` is planned so far.
    pub fn plans(&self, category: &str) -> bool {
        self.tallies.iter().any(|t| t.category == category)
    }

    /// The list, and the actions set aside.
    pub fn finish(self) -> Result<(ActionList, Vec<Action>)> {
        let mut ids = self.ids;
        ids.sort_unstable();
        let list = ActionList {
            all: self.all.finish()?,
            few: self.few,
            sorted_ids: ids.into(),
            tallies: self.tallies,
        };
        Ok((list, self.set_aside))
    }
}

impl ActionList {
    pub fn len(&self) -> u64 {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.tallies.iter().map(|t| t.bytes).sum()
    }

    /// How many actions of `category` there are, and their bytes.
    pub fn tally(&self, category: &str) -> (u64, u64) {
        self.tallies
            .iter()
            .filter(|t| t.category == category)
            .fold((0, 0), |(n, b), t| (n + t.count, b + t.bytes))
    }

    /// How many actions of `category` are of `kind`, and their bytes.
    pub fn tally_of(&self, category: &str, kind: OpKind) -> (u64, u64) {
        self.tallies
            .iter()
            .filter(|t| t.category == category && t.kind == kind)
            .fold((0, 0), |(n, b), t| (n + t.count, b + t.bytes))
    }

    /// Whether an action of this id is in the list.
    pub fn holds(&self, id: &str) -> bool {
        self.terms_of(id).is_some()
    }

    /// The terms of the action of this id, if the list has one.
    pub fn terms_of(&self, id: &str) -> Option<Terms> {
        self.sorted_ids
            .binary_search_by(|(probe, _)| (**probe).cmp(id))
            .ok()
            .map(|at| self.sorted_ids[at].1)
    }

    pub fn sorted_ids(&self) -> impl Iterator<Item = &str> {
        self.sorted_ids.iter().map(|(id, _)| &**id)
    }

    /// The actions that are not per transcript: logs, worktrees, releases, projects.
    pub fn few(&self) -> &[Action] {
        &self.few
    }

    /// Every action, read back in the order planned.
    pub fn each(&self) -> Result<impl Iterator<Item = Result<Action>> + '_> {
        Ok(self
            .all
            .items_as::<Action>()?
            .map(|a| a.map_err(anyhow::Error::from)))
    }

    /// The per-transcript actions, read back in the order planned.
    pub fn per_transcript(&self) -> Result<impl Iterator<Item = Result<Action>> + '_> {
        Ok(self.each()?.filter(|a| match a {
            Ok(a) => is_per_transcript(&a.category),
            Err(_) => true,
        }))
    }

    /// The first `n` actions of `category`.
    pub fn first_of(&self, category: &str, n: usize) -> Result<Vec<Action>> {
        if !is_per_transcript(category) {
            return Ok(self
                .few
                .iter()
                .filter(|a| a.category == category)
                .take(n)
                .cloned()
                .collect());
        }
        let mut found = Vec::new();
        for a in self.each()? {
            let a = a?;
            if a.category == category {
                found.push(a);
                if found.len() == n {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Every action, as the list a report's `--json` streams.
    pub fn as_long_list(&self) -> &LongList {
        &self.all
    }
}

impl Serialize for ActionList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.all.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ActionList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Streamed;
        impl<'de> Visitor<'de> for Streamed {
            type Value = ActionList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of actions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ActionList, A::Error> {
                use serde::de::Error;
                let mut list = ActionListBuilder::new().map_err(A::Error::custom)?;
                while let Some(action) = seq.next_element::<Action>()? {
                    list.push(action).map_err(A::Error::custom)?;
                }
                Ok(list.finish().map_err(A::Error::custom)?.0)
            }
        }
        deserializer.deserialize_seq(Streamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str, category: &str, bytes: u64) -> Action {
        Action {
            id: id.into(),
            category: category.into(),
            kind: if is_per_transcript(category) {
                OpKind::ArchiveSession
            } else {
                OpKind::StoreFiles
            },
            path: format!("/home/{id}"),
            target: None,
            bytes,
            reason: "test".into(),
            mtime_ns: 0,
            main_repository: None,
            projects: Vec::new(),
        }
    }

    #[test]
    fn a_list_reads_back_in_order_with_its_tallies_ids_and_few() {
        let mut b = ActionListBuilder::new().unwrap();
        for (id, cat, bytes) in [
            ("c", "sessions", 10),
            ("a", "sessions", 20),
            ("e", "logs", 300),
            ("b", "compress", 4),
        ] {
            b.push(action(id, cat, bytes)).unwrap();
        }
        let (list, _) = b.finish().unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(list.bytes(), 334);
        assert_eq!(list.tally("sessions"), (2, 30));
        assert_eq!(list.tally("releases"), (0, 0));
        assert_eq!(list.tally_of("sessions", OpKind::ArchiveSession), (2, 30));
        assert_eq!(list.tally_of("sessions", OpKind::CompressSession), (0, 0));
        assert!(list.holds("e") && list.holds("a") && !list.holds("d"));
        assert_eq!(list.sorted_ids().collect::<Vec<_>>(), ["a", "b", "c", "e"]);
        assert_eq!(
            list.few().iter().map(|a| &a.id[..]).collect::<Vec<_>>(),
            ["e"]
        );
        let order: Vec<String> = list.each().unwrap().map(|a| a.unwrap().id).collect();
        assert_eq!(order, ["c", "a", "e", "b"]);
        let per: Vec<String> = list
            .per_transcript()
            .unwrap()
            .map(|a| a.unwrap().id)
            .collect();
        assert_eq!(per, ["c", "a", "b"]);
        assert_eq!(list.first_of("sessions", 1).unwrap()[0].id, "c");
    }

    #[test]
    fn a_list_round_trips_through_json_and_two_readers_do_not_disturb_each_other() {
        let mut b = ActionListBuilder::new().unwrap();
        for i in 0..500 {
            b.push(action(&format!("{i:04}"), "sessions", i)).unwrap();
        }
        let (list, _) = b.finish().unwrap();
        let text = serde_json::to_string(&list).unwrap();
        let back: ActionList = serde_json::from_str(&text).unwrap();
        assert_eq!(back.len(), 500);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        let copy = list.clone();
        let mut one = list.each().unwrap();
        let mut two = copy.each().unwrap();
        for i in 0..500 {
            let a = one.next().unwrap().unwrap();
            let b = two.next().unwrap().unwrap();
            assert_eq!((a.bytes, b.bytes), (i, i));
        }
    }

    #[test]
    fn actions_on_items_set_aside_are_handed_back_not_listed() {
        let mut b = ActionListBuilder::new()
            .unwrap()
            .setting_aside(vec![PathBuf::from("/home/b")]);
        for (id, cat) in [("a", "sessions"), ("b", "logs"), ("c", "sessions")] {
            b.push(action(id, cat, 1)).unwrap();
        }
        let (list, set_aside) = b.finish().unwrap();
        assert_eq!(list.sorted_ids().collect::<Vec<_>>(), ["a", "c"]);
        assert!(list.few().is_empty());
        assert_eq!(set_aside.len(), 1);
        assert_eq!(set_aside[0].id, "b");
    }
}
