//! Object storage classes (cos-protocol.md §4.5).

/// Object storage classes COS knows, as `x-cos-storage-class` spells them.
pub const STORAGE_CLASSES: [&str; 8] = [
    "STANDARD",
    "STANDARD_IA",
    "ARCHIVE",
    "DEEP_ARCHIVE",
    "INTELLIGENT_TIERING",
    "MAZ_STANDARD",
    "MAZ_STANDARD_IA",
    "MAZ_INTELLIGENT_TIERING",
];

/// The class of an object PUT without `x-cos-storage-class`.
pub const DEFAULT_STORAGE_CLASS: &str = "STANDARD";

/// The canonical spelling of a storage class given in any case, or None if COS has no such
/// class.
pub fn canonical(name: &str) -> Option<&'static str> {
    STORAGE_CLASSES
        .iter()
        .copied()
        .find(|c| c.eq_ignore_ascii_case(name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_spelling() {
        assert_eq!(canonical("standard_ia"), Some("STANDARD_IA"));
        assert_eq!(canonical(" ARCHIVE "), Some("ARCHIVE"));
        assert_eq!(canonical("GLACIER"), None);
        assert!(STORAGE_CLASSES.contains(&DEFAULT_STORAGE_CLASS));
    }
}
