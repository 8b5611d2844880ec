//! Checking a page of ops before it is taken back: each item still where and as its op
//! left it, its original place free, its thread row as expected. The same check plans the
//! revert, so a run checks every page once with nothing moved, then checks and plans each
//! page again just before it moves it.

use anyhow::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::home::CodexHome;
use crate::ops::OpRecord;
use crate::ops::row_now::IndexesNow;
use crate::ops::session_move::{self, PlannedMove};
use crate::ops::thread_row::IndexWriter;
use crate::ops::transcript_compress::{self, PlannedRecode};
use crate::store::Store;

/// A thread index as a revert holds it: a dry run only reads it (through a connection that
/// writes not a byte in the home, WAL and `-shm` included), a run writes it.
pub(super) enum IndexHandle {
    Reading(crate::home::sqlite_read::ReadOnlyDb),
    Writing(IndexWriter),
}

impl IndexHandle {
    fn open(path: &Path, dry_run: bool) -> Result<IndexHandle> {
        if dry_run {
            return Ok(IndexHandle::Reading(crate::home::sqlite_read::open(path)?));
        }
        let writer = IndexWriter::open(path)?;
        writer.preflight(path)?;
        Ok(IndexHandle::Writing(writer))
    }

    fn connection(&self) -> &rusqlite::Connection {
        match self {
            IndexHandle::Reading(db) => &db.conn,
            IndexHandle::Writing(w) => w.connection(),
        }
    }

    pub(super) fn writer(&mut self) -> Option<&mut IndexWriter> {
        match self {
            IndexHandle::Reading(_) => None,
            IndexHandle::Writing(w) => Some(w),
        }
    }
}

/// An op to take back, with what its revert needs decided before anything moves.
pub(super) enum Planned {
    Session(OpRecord, Box<PlannedMove>),
    Recode(OpRecord, Box<PlannedRecode>),
    Other(OpRecord),
}

impl Planned {
    pub(super) fn op(&self) -> &OpRecord {
        match self {
            Planned::Session(op, _) | Planned::Recode(op, _) | Planned::Other(op) => op,
        }
    }

    /// The thread index a batched revert writes, for grouping consecutive ones.
    pub(super) fn batch_key(&self) -> Option<(bool, Option<String>)> {
        match self {
            Planned::Session(_, p) => Some((true, p.detail.index.clone())),
            Planned::Recode(_, p) => Some((false, p.detail.index.clone())),
            Planned::Other(_) => None,
        }
    }
}

/// What identifies a file's content without reading it, as Git's index does: the same
/// inode with the same size, mtime and ctime (which no one can set back) holds the same
/// bytes. 40 bytes per moved session, so the run's second look at each page need not hash
/// what the first look proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileSignature {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl FileSignature {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<FileSignature> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(FileSignature {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        })
    }

    #[cfg(not(unix))]
    fn of(_path: &Path) -> Option<FileSignature> {
        None
    }
}

/// Checks pages of ops and plans their reverts, holding across pages what they share: the
/// thread indexes (opened once), the folders codex-maint created, and the signature of
/// each file whose hash a check proved.
pub(super) struct Checker<'a> {
    store: &'a Store,
    dry_run: bool,
    guard: crate::home_guard::HomeGuard,
    our_folders: Vec<PathBuf>,
    pub(super) indexes: HashMap<String, IndexHandle>,
    indexes_now: IndexesNow,
    readers: HashMap<String, crate::sqlite_read::ReadOnlyDb>,
    proven: HashMap<i64, FileSignature>,
    /// Ops whose item Codex itself took over since, with the line that says so: left alone.
    pub(super) taken_over: std::collections::BTreeMap<i64, String>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(store: &'a Store, home: &CodexHome, dry_run: bool) -> Result<Checker<'a>> {
        Ok(Checker {
            store,
            dry_run,
            guard: crate::home_guard::HomeGuard::new(&home.root),
            our_folders: session_move::folders_we_created(store)?,
            indexes: HashMap::new(),
            indexes_now: IndexesNow::default(),
            readers: HashMap::new(),
            proven: HashMap::new(),
            taken_over: Default::default(),
        })
    }

    /// Plans the revert of each op of `page` and says why any cannot be taken back now.
    /// Each moved file is hashed on all cores, unless an earlier check of the same op
    /// proved its hash and its signature has not changed since.
    pub(super) fn check_page(
        &mut self,
        page: Vec<OpRecord>,
    ) -> Result<(Vec<Planned>, Vec<String>)> {
        let mut to_hash = Vec::new();
        let mut known = Vec::new();
        let mut signed_before = HashMap::new();
        for op in page.iter().filter(|o| session_move::is_move(o)) {
            let Some(place) = op.dst.as_deref().map(PathBuf::from) else {
                continue;
            };
            let now = FileSignature::of(&place);
            let expected = op.hash_after.as_ref().or(op.hash_before.as_ref());
            match (self.proven.get(&op.id), expected) {
                (Some(sig), Some(hash)) if now.as_ref() == Some(sig) => {
                    known.push((place, hash.clone()))
                }
                _ => {
                    if let Some(sig) = now {
                        signed_before.insert(op.id, sig);
                    }
                    to_hash.push(place);
                }
            }
        }
        let hashes = crate::content_hash::Prefetched::with_known(
            to_hash,
            known,
            &crate::progress::NoProgress,
        );
        let mut plans = Vec::with_capacity(page.len());
        let mut conflicts = Vec::new();
        for op in page {
            if self.taken_over.contains_key(&op.id) {
                continue;
            }
            let (plan, found) = self.check_one(op, &hashes)?;
            if !found.is_empty()
                && let Some(how) = self.taken_over_by_codex(plan.op())
            {
                // The user's own change through Codex: left as it is, the rest goes back.
                let line = crate::ops::taken_over::line(plan.op(), &how);
                self.taken_over.insert(plan.op().id, line);
                continue;
            }
            if let Planned::Session(op, m) = &plan
                && found.is_empty()
                && m.known_hash.is_some()
                && let Some(before) = signed_before.get(&op.id)
                && FileSignature::of(&m.src).as_ref() == Some(before)
            {
                // Unchanged from before it was hashed to after: the hash holds for it.
                self.proven.insert(op.id, *before);
            }
            conflicts.extend(found);
            plans.push(plan);
        }
        Ok((plans, conflicts))
    }

    /// How Codex itself took over the item of a move or recode, judged by the row its index
    /// holds for the thread now.
    fn taken_over_by_codex(&self, op: &OpRecord) -> Option<String> {
        let thread_id = match &op.detail {
            crate::ops::OpDetail::SessionMove(d) => d.thread_id.as_str(),
            crate::ops::OpDetail::Recode(d) => d.thread_id.as_str(),
            _ => return crate::ops::taken_over::by_codex(op, None),
        };
        let place = Path::new(op.dst.as_deref()?);
        let index = self.indexes_now.for_place(op.detail.index(), place)?;
        let row = match self.indexes.get(&index) {
            Some(handle) => crate::ops::thread_row::read(handle.connection(), thread_id),
            None => crate::sqlite_read::open(Path::new(&index))
                .and_then(|db| crate::ops::thread_row::read(&db.conn, thread_id)),
        };
        crate::ops::taken_over::by_codex(op, Some(&row))
    }

    fn check_one(
        &mut self,
        op: OpRecord,
        hashes: &crate::content_hash::Prefetched,
    ) -> Result<(Planned, Vec<String>)> {
        let mut conflicts = Vec::new();
        if transcript_compress::is_recode(&op) {
            let refused = crate::ops::path_conflicts(&self.guard, &op);
            if !refused.is_empty() {
                return Ok((Planned::Other(op), refused));
            }
            let (plan, found) =
                transcript_compress::plan_checked_revert(&op, &self.our_folders, &mut self.readers);
            let Some(plan) = plan else {
                return Ok((Planned::Other(op), found));
            };
            if let Some(path) = &plan.detail.index
                && !self.dry_run
                && !self.indexes.contains_key(path)
            {
                self.indexes
                    .insert(path.clone(), IndexHandle::open(Path::new(path), false)?);
            }
            return Ok((Planned::Recode(op, Box::new(plan)), found));
        }
        if !session_move::is_move(&op) {
            let refused = crate::ops::path_conflicts(&self.guard, &op);
            if !refused.is_empty() {
                // Its other checks would already read or stat where the guard says no.
                return Ok((Planned::Other(op), refused));
            }
            let found = crate::ops::revert_conflicts(self.store, &op);
            return Ok((Planned::Other(op), found));
        }
        let mut plan = session_move::plan_revert(&op, &self.our_folders)?;
        if let Err(reason) = session_move::adopt_index_now(&op, &mut plan, &self.indexes_now) {
            conflicts.push(reason);
        }
        let index = match &plan.detail.index {
            Some(path) if Path::new(path).exists() => {
                if !self.indexes.contains_key(path) {
                    match IndexHandle::open(Path::new(path), self.dry_run) {
                        Ok(handle) => {
                            self.indexes.insert(path.clone(), handle);
                        }
                        Err(e)
                            if crate::error::exit_kind_of(&e)
                                == crate::error::ExitKind::Refused =>
                        {
                            return Err(e);
                        }
                        Err(e) => conflicts.push(format!(
                            "op {}: cannot open the thread index {path}: {e:#}",
                            op.id
                        )),
                    }
                }
                self.indexes.get(path).map(IndexHandle::connection)
            }
            _ => None,
        };
        conflicts.extend(session_move::revert_conflicts(
            &op, &mut plan, index, hashes,
        ));
        conflicts.extend(crate::ops::path_conflicts(&self.guard, &op));
        Ok((Planned::Session(op, Box::new(plan)), conflicts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::OpKind;
    use crate::ops::session_move::MoveDetail;
    use crate::testkit::synthetic_home::{self, SessionSpec};

    /// A store whose one run archived one session of `home`.
    fn archived_one(dir: &Path) -> (CodexHome, Store, PathBuf) {
        let home = CodexHome {
            root: dir.join("home"),
        };
        let spec = SessionSpec::aged(1, 30.0, 4000);
        synthetic_home::build(&home.root, std::slice::from_ref(&spec), false).unwrap();
        let store = Store::open_for_write(&dir.join("store")).unwrap();
        let run = crate::ops::Run::begin(&store, "archive", &[], &home.root, None).unwrap();
        let dst = home.root.join("archived_sessions").join(spec.file_name());
        let plan = PlannedMove {
            kind: OpKind::ArchiveSession,
            src: spec.path_in(&home.root),
            dst: dst.clone(),
            detail: MoveDetail {
                thread_id: spec.id.clone(),
                ..MoveDetail::default()
            },
            reverts_op: None,
            known_hash: None,
        };
        session_move::execute_batch(&run, vec![plan], None).unwrap();
        run.finish("done").unwrap();
        (home, store, dst)
    }

    fn live(store: &Store) -> Vec<OpRecord> {
        crate::ops::record::read_all(store.catalog.live_ops().unwrap()).unwrap()
    }

    #[test]
    fn a_second_check_trusts_a_proven_hash_only_while_the_file_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let (home, store, archived) = archived_one(dir.path());
        let mut checker = Checker::new(&store, &home, true).unwrap();
        let (plans, conflicts) = checker.check_page(live(&store)).unwrap();
        assert!(conflicts.is_empty(), "{conflicts:?}");
        assert_eq!(plans.len(), 1);
        assert_eq!(checker.proven.len(), 1, "the first check proves the hash");
        let (_, conflicts) = checker.check_page(live(&store)).unwrap();
        assert!(conflicts.is_empty(), "{conflicts:?}");

        // Same size, same mtime, other bytes: only the ctime tells, and it is enough.
        let mtime = std::fs::metadata(&archived).unwrap().modified().unwrap();
        let mut bytes = std::fs::read(&archived).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        std::fs::write(&archived, &bytes).unwrap();
        synthetic_home::set_mtime(&archived, mtime.into()).unwrap();
        let (_, conflicts) = checker.check_page(live(&store)).unwrap();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].contains("hash differs"), "{conflicts:?}");
    }
}
