//! Names that become file names: a volume name can never escape its pool,
//! a pool name never escapes the definition directory.
//!
//! Refused, with an error naming the field and the value: empty names,
//! `.` and `..`, anything containing `/` or NUL (or another control
//! character), names starting with `.` (hidden files, and the prefix of the
//! daemon's own temporary files), and names longer than [`MAX_NAME`] bytes
//! (so that the temporary `.<name>.virt-part` still fits in a file name).

use common::{ErrorCode, ErrorDomain, VirtError};

/// The longest volume or pool name, in bytes.
pub const MAX_NAME: usize = 240;

/// Suffix of a volume file that is still being written.
pub const PART_SUFFIX: &str = ".virt-part";

/// The temporary name a volume is created under before it is renamed into
/// place.
pub fn part_name(name: &str) -> String {
    format!(".{name}{PART_SUFFIX}")
}

/// Whether `file` is one of our temporary volume files.
pub fn is_part_name(file: &str) -> bool {
    file.starts_with('.') && file.ends_with(PART_SUFFIX) && file.len() > PART_SUFFIX.len() + 1
}

fn refuse(field: &str, value: &str, why: &str) -> VirtError {
    // Show control characters escaped, so the message stays one line.
    let shown: String = value.escape_debug().collect();
    VirtError::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Storage,
        format!("invalid argument: {field} '{shown}' {why}"),
    )
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Checks a name used as a file name; `field` names it in the error
/// (`volume name`, `pool name`).
///
/// # Errors
/// INVALID_ARG naming the field, the value and the rule.
pub fn check_file_name(field: &str, name: &str) -> Result<(), VirtError> {
    if name.is_empty() {
        return Err(refuse(field, name, "must not be empty"));
    }
    if name == "." || name == ".." {
        return Err(refuse(field, name, "is not allowed"));
    }
    if name.contains('/') {
        return Err(refuse(field, name, "cannot contain '/'"));
    }
    if name.contains('\0') {
        return Err(refuse(field, name, "cannot contain NUL"));
    }
    if name.chars().any(char::is_control) {
        return Err(refuse(field, name, "cannot contain control characters"));
    }
    if name.starts_with('.') {
        return Err(refuse(field, name, "cannot start with '.'"));
    }
    if name.len() > MAX_NAME {
        return Err(refuse(
            field,
            &format!("{}...", prefix(name, 32)),
            &format!("is too long ({} bytes, at most {MAX_NAME})", name.len()),
        ));
    }
    Ok(())
}

/// Checks a volume name.
///
/// # Errors
/// See [`check_file_name`].
pub fn check_vol_name(name: &str) -> Result<(), VirtError> {
    check_file_name("volume name", name)
}

/// Checks a pool name: a file name, and short enough for the definition's
/// files ([`common::configstore::MAX_NAME`]).
///
/// # Errors
/// See [`check_file_name`].
pub fn check_pool_name(name: &str) -> Result<(), VirtError> {
    check_file_name("pool name", name)?;
    let max = common::configstore::MAX_NAME;
    if name.len() > max {
        return Err(refuse(
            "pool name",
            &format!("{}...", prefix(name, 32)),
            &format!("is too long ({} bytes, at most {max})", name.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_names_are_refused_with_field_and_value() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "/etc/passwd",
            "a\0b",
            "a\nb",
            ".hidden",
        ] {
            let e = check_vol_name(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidArg, "{bad:?}");
            assert!(e.message.contains("volume name '"), "{}", e.message);
        }
        let long = "x".repeat(MAX_NAME + 1);
        let e = check_vol_name(&long).expect_err("long");
        assert!(e.message.contains("too long (241 bytes"), "{}", e.message);
        let e = check_vol_name("a/b").expect_err("slash");
        assert_eq!(
            e.message,
            "invalid argument: volume name 'a/b' cannot contain '/'"
        );
        for good in [
            "a",
            "disk.qcow2",
            "a..b",
            "x".repeat(MAX_NAME).as_str(),
            "é",
        ] {
            check_vol_name(good).expect(good);
        }
    }

    #[test]
    fn part_names() {
        assert_eq!(part_name("a.img"), ".a.img.virt-part");
        assert!(is_part_name(".a.img.virt-part"));
        assert!(!is_part_name("a.img.virt-part"));
        assert!(!is_part_name(".virt-part"));
    }
}
