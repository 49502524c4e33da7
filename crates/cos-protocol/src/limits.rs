//! COS's size and count limits (cos-protocol.md §4, §6, §11), defined once: the client checks
//! them before sending, `MemoryStore` and cos-local enforce them as COS does, and the
//! filesystem plans its uploads within them.

const MIB: u64 = 1024 * 1024;

/// The longest object key, in UTF-8 bytes (`KeyTooLong` above).
pub const MAX_KEY_BYTES: usize = 850;

/// Part numbers run `1..=MAX_PARTS`.
pub const MAX_PARTS: u32 = 10_000;
/// Every part but the last must be at least this big (checked at Complete: `EntityTooSmall`).
pub const MIN_PART_SIZE: u64 = MIB;
/// The largest part (5 GB).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// The largest body of one PUT Object (5 GB), and the largest source of one PUT Object - Copy
/// (bigger objects are copied part by part with Upload Part - Copy).
pub const MAX_PUT_OBJECT_BYTES: u64 = 5 * 1024 * MIB;

/// GET Bucket (ListObjects) answers at most this many entries (Contents plus CommonPrefixes)
/// per page, which is also the default `max-keys`.
pub const MAX_LIST_KEYS: u32 = 1000;
/// List Multipart Uploads and List Parts answer at most this many entries per page.
pub const MAX_LIST_UPLOADS: u32 = 1000;
/// DELETE Multiple Objects takes at most this many keys per request.
pub const MAX_DELETE_KEYS: usize = 1000;

/// Total size of an object's user metadata (`x-cos-meta-*`): the names without the prefix
/// plus the values, in bytes (`MetadataTooLarge` above).
pub const MAX_USER_METADATA: usize = 2048;

/// The prefix of user-metadata headers.
pub const USER_METADATA_PREFIX: &str = "x-cos-meta-";

/// The size [`MAX_USER_METADATA`] limits, from `(name, value)` pairs with or without the
/// `x-cos-meta-` prefix on the names.
pub fn user_metadata_size<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    pairs
        .into_iter()
        .map(|(name, value)| {
            let name = if name.len() >= USER_METADATA_PREFIX.len()
                && name.as_bytes()[..USER_METADATA_PREFIX.len()]
                    .eq_ignore_ascii_case(USER_METADATA_PREFIX.as_bytes())
            {
                &name[USER_METADATA_PREFIX.len()..]
            } else {
                name
            };
            name.len() + value.len()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_size_counts_names_without_prefix() {
        assert_eq!(user_metadata_size([("x-cos-meta-ab", "xyz")]), 5);
        assert_eq!(user_metadata_size([("X-Cos-Meta-ab", "xyz")]), 5);
        assert_eq!(user_metadata_size([("ab", "xyz"), ("c", "")]), 6);
    }
}
