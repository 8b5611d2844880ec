//! Parsers clap runs on flag values, so a command receives ages in seconds and sizes in
//! bytes, converted once where the flag is read.

/// An age such as `10d`, `12h`, `2w`, in seconds.
pub fn age_secs(text: &str) -> Result<u64, String> {
    crate::clock::parse_duration(text)
        .ok_or_else(|| "expected a number and a unit (s, m, h, d, w), e.g. 30d".to_string())
}

/// A whole number of megabytes (MiB, as the flags have always meant), in bytes.
pub fn megabytes(text: &str) -> Result<u64, String> {
    let mb: u64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a whole number of megabytes, e.g. 50".to_string())?;
    mb.checked_mul(1 << 20)
        .ok_or_else(|| format!("{mb} MB is more bytes than this tool can count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_come_out_in_seconds_and_bytes() {
        assert_eq!(age_secs("10d"), Ok(10 * 86_400));
        assert_eq!(age_secs("2w"), Ok(14 * 86_400));
        assert!(age_secs("10").is_err());
        assert_eq!(megabytes("50"), Ok(50 << 20));
        assert!(megabytes("1.5").is_err());
        assert!(megabytes(&u64::MAX.to_string()).is_err());
    }
}
