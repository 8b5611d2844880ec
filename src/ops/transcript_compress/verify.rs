//! Whether a recode still holds. A compressed transcript is the only copy, so it is
//! decoded in full: matching its stored hash alone would not show it still gives back the
//! transcript.

use rayon::prelude::*;
use std::path::{Path, PathBuf};

use super::{RecodeDetail, is_recode};
use crate::ops::{OpKind, OpRecord};
use crate::zstd_stream::{self, Hashed};

fn journal_unreadable(op: &OpRecord) -> String {
    format!(
        "op {} ({}): its journal detail cannot be read",
        op.id, op.kind
    )
}

/// What `verify` finds wrong with a recode in force: the transcript missing or not what
/// was recorded (a compressed one must decode to the recorded plain hash), or its row
/// pointing at nothing.
pub(super) fn verify_live(
    op: &OpRecord,
    rows: &crate::ops::session_move::RowLookup<'_>,
    indexes_now: &crate::ops::row_now::IndexesNow,
    proven: &Proven,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(dst) = op.dst.as_deref() else {
        return problems;
    };
    let Ok(detail) = op.detail_as::<RecodeDetail>() else {
        return vec![journal_unreadable(op)];
    };
    match proven.get(Path::new(dst)) {
        Some(Ok(h)) => {
            if detail.plain_hash.as_ref() != Some(&h.plain_hash) {
                problems.push(format!(
                    "op {}: {dst} does not decode to the recorded transcript",
                    op.id
                ));
            }
            if op.hash_after.as_ref()
                != Some(if op.kind == OpKind::CompressSession {
                    &h.stored_hash
                } else {
                    &h.plain_hash
                })
            {
                problems.push(format!(
                    "op {}: {dst} does not match its recorded hash",
                    op.id
                ));
            }
        }
        Some(Err(e)) => problems.push(format!(
            "op {}: {dst} is missing or cannot be decoded ({e})",
            op.id
        )),
        None => problems.push(format!("op {}: {dst} was not checked", op.id)),
    }
    if let Some(index) = indexes_now.for_place(detail.index.as_deref(), Path::new(dst)) {
        problems.extend(crate::ops::row_now::disagreement(
            op.id,
            &detail.thread_id,
            &index,
            rows(&index, &detail.thread_id),
            Path::new(dst),
            detail.row_after.as_ref(),
        ));
    }
    problems
}

/// Each checked transcript's hashes: compressed ones decoded, plain ones read.
pub type Proven = std::collections::HashMap<PathBuf, std::io::Result<Hashed>>;

/// Proves, on all cores, every transcript the recodes in `ops` left in place.
pub fn prove_all(ops: &[OpRecord]) -> Proven {
    let targets: Vec<PathBuf> = ops
        .iter()
        .filter(|o| is_recode(o))
        .filter_map(|o| o.dst.as_deref().map(PathBuf::from))
        .collect();
    targets
        .into_par_iter()
        .map(|path| {
            let proof = if zstd_stream::is_compressed_name(&path) {
                zstd_stream::decode_and_hash(&path)
            } else {
                crate::content_hash::hash_file(&path).map(|h| Hashed {
                    plain_hash: h.clone(),
                    plain_len: 0,
                    stored_hash: h,
                    stored_len: 0,
                })
            };
            (path, proof)
        })
        .collect()
}
