//! The shortest prefix of each session id that names it alone in the home: what `archive`
//! and `handoff` accept in place of the full id, and what listings show.

use super::session_list::ListedSession;

/// Ids are shown this long, or longer where a shorter prefix would name two sessions.
const ID_PREFIX: usize = 8;

/// The shortest prefix of each id, at least `ID_PREFIX` long, that no other session of the
/// home shares: what `archive` and `handoff` accept in place of the full id.
pub struct IdPrefixes {
    sorted: Vec<String>,
}

impl IdPrefixes {
    pub fn new(sessions: &[ListedSession]) -> IdPrefixes {
        let mut sorted: Vec<String> = sessions.iter().filter_map(|s| s.id.clone()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        IdPrefixes { sorted }
    }

    pub fn of<'a>(&self, id: &'a str) -> &'a str {
        let common = |other: &str| {
            id.bytes()
                .zip(other.bytes())
                .take_while(|(a, b)| a == b)
                .count()
        };
        let at = self.sorted.partition_point(|s| s.as_str() < id);
        let mut len = ID_PREFIX;
        // Neighbours in sorted order share the longest prefixes with it.
        for other in [at.checked_sub(1), Some(at), Some(at + 1)]
            .into_iter()
            .flatten()
            .filter_map(|i| self.sorted.get(i))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_eight_long_or_as_long_as_it_takes_to_be_unique() {
        let prefixes = IdPrefixes {
            sorted: vec![
                "0195a3b1-0000-7000-8000-000000000001".into(),
                "0195a3b1-0000-7000-8000-000000000002".into(),
                "0195a3b1-1000-7000-8000-000000000000".into(),
                "77777777-0000-7000-8000-000000000000".into(),
            ],
        };
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
            "77777777"
        );
    }
}
