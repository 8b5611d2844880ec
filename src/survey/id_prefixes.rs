//! The shortest prefix of each session id that names it alone in the home: what `archive`
//! and `handoff` accept in place of the full id, and what listings show.

use super::session_list::ListedSession;

/// Ids are shown this long, or longer where a shorter prefix would name two sessions.
const ID_PREFIX: usize = 8;

/// The shortest prefix of each id, at least `ID_PREFIX` long, that no other session of the
/// home shares: what `archive` and `handoff` accept in place of the full id.
pub struct IdPrefixes {
    /// Ids as Codex writes them (lowercase, hyphenated uuids) held as numbers: 16 bytes
    /// each instead of a string's 60-odd, for 100,000 sessions; numeric order is their
    /// text's order.
    uuids: Vec<u128>,
    /// Any other id, as text.
    others: Vec<String>,
}

/// The id as a number, when writing the number back gives the id's very text.
fn as_uuid(id: &str) -> Option<u128> {
    let parsed = uuid::Uuid::try_parse(id).ok()?;
    let mut text = uuid::Uuid::encode_buffer();
    (parsed.hyphenated().encode_lower(&mut text) == id).then(|| parsed.as_u128())
}

impl IdPrefixes {
    pub fn new(sessions: &[ListedSession]) -> IdPrefixes {
        Self::of_ids(sessions.iter().filter_map(|s| s.id.as_deref()))
    }

    fn of_ids<'a>(ids: impl Iterator<Item = &'a str>) -> IdPrefixes {
        let mut uuids = Vec::new();
        let mut others = Vec::new();
        for id in ids {
            match as_uuid(id) {
                Some(n) => uuids.push(n),
                None => others.push(id.to_string()),
            }
        }
        uuids.sort_unstable();
        uuids.dedup();
        others.sort_unstable();
        others.dedup();
        IdPrefixes { uuids, others }
    }

    pub fn of<'a>(&self, id: &'a str) -> &'a str {
        let common = |other: &str| {
            id.bytes()
                .zip(other.bytes())
                .take_while(|(a, b)| a == b)
                .count()
        };
        let mut len = ID_PREFIX;
        // Neighbours in sorted order share the longest prefixes with it.
        let mut text = uuid::Uuid::encode_buffer();
        let mut uuid_text = |n: u128| -> String {
            uuid::Uuid::from_u128(n)
                .hyphenated()
                .encode_lower(&mut text)
                .to_string()
        };
        let at = self.uuids.partition_point(|&n| uuid_text(n).as_str() < id);
        for n in neighbours(at).filter_map(|i| self.uuids.get(i)) {
            let other = uuid_text(*n);
            if other != id {
                len = len.max(common(&other) + 1);
            }
        }
        let at = self.others.partition_point(|s| s.as_str() < id);
        for other in neighbours(at)
            .filter_map(|i| self.others.get(i))
            .filter(|other| other.as_str() != id)
        {
            len = len.max(common(other) + 1);
        }
        let mut end = len.min(id.len());
        while !id.is_char_boundary(end) {
            end += 1;
        }
        &id[..end]
    }
}

fn neighbours(at: usize) -> impl Iterator<Item = usize> {
    [at.checked_sub(1), Some(at), Some(at + 1)]
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_eight_long_or_as_long_as_it_takes_to_be_unique() {
        let prefixes = IdPrefixes::of_ids(
            [
                "0195a3b1-0000-7000-8000-000000000001",
                "0195a3b1-0000-7000-8000-000000000002",
                "0195a3b1-1000-7000-8000-000000000000",
                "77777777-0000-7000-8000-000000000000",
                // Not a uuid as Codex writes one: kept as text, and still told apart.
                "77777777-0000-7000-8000-00000000000X",
                "not-a-uuid",
            ]
            .into_iter(),
        );
        assert_eq!(
            prefixes.of("0195a3b1-0000-7000-8000-000000000001"),
            "0195a3b1-0000-7000-8000-000000000001"
        );
        assert_eq!(
            prefixes.of("0195a3b1-1000-7000-8000-000000000000"),
            "0195a3b1-1"
        );
        assert_eq!(
            prefixes.of("77777777-0000-7000-8000-000000000000"),
            "77777777-0000-7000-8000-000000000000"
        );
        assert_eq!(prefixes.of("not-a-uuid"), "not-a-uu");
        assert_eq!(
            prefixes.of("0195a3b1-0000-7000-8000-000000000002"),
            "0195a3b1-0000-7000-8000-000000000002"
        );
    }
}
