//! The bodies of hostlab's cargo-fuzz targets, as plain functions: each
//! feeds arbitrary bytes to one parser exactly as the server does and checks
//! what must hold for every input (no panic, the documented error class,
//! invariants of what was accepted). The targets in `fuzz_targets/` call
//! them; the unit tests below run them on the seeds with stable Rust, so
//! they keep compiling without nightly. How to run: docs/fuzzing.md.

use bytes::Bytes;
use hostlab_hosts::policy::Policy;
use hostlab_workloads::api::parse_json;
use hostlab_workloads::books::{MAX_TEXT_CHARS, NewBook, YEAR_RANGE};
use hostlab_workloads::tasks::{MAX_ROWS, TaskRequest, valid_task_id, validate_rows};

/// A rejected body is 400 `invalid_json` (not JSON, bad UTF-8) or 422
/// `validation` (JSON of the wrong shape), never anything else.
fn check_rejection(e: &hostlab_workloads::api::ApiError) {
    match (e.status.as_u16(), e.code) {
        (400, "invalid_json") | (422, "validation") => {}
        other => panic!("a bad body got {other:?}: {}", e.message),
    }
    assert!(!e.message.is_empty(), "an error says what is wrong");
}

/// `POST /books`: parse the body as the API does, then validate. Accepted
/// books keep the documented limits and survive a JSON round trip.
pub fn book_json(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    let book: NewBook = match parse_json(&body) {
        Ok(book) => book,
        Err(e) => return check_rejection(&e),
    };
    if book.validate().is_err() {
        return;
    }
    for field in [&book.title, &book.author] {
        assert!(!field.trim().is_empty(), "accepted a blank field: {book:?}");
        assert!(field.chars().count() <= MAX_TEXT_CHARS, "accepted a long field");
    }
    if let Some(year) = book.year {
        assert!(YEAR_RANGE.contains(&year), "accepted year {year}");
    }
    let again: NewBook = parse_json(&Bytes::from(serde_json::to_vec(&book).unwrap())).unwrap();
    assert_eq!(again, book, "a stored book reads back the same");
}

/// `POST /tasks`: parse, validate the request, then validate its rows as the
/// task actor does. The row report must add up: indices in order and in
/// range, totals of the valid rows without overflow, `balanced` as defined.
pub fn task_json(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    let task: TaskRequest = match parse_json(&body) {
        Ok(task) => task,
        Err(e) => return check_rejection(&e),
    };
    let accepted = task.validate().is_ok();
    if accepted {
        assert!(valid_task_id(&task.id) && task.rows.len() <= MAX_ROWS);
    }
    // The actor only sees accepted tasks; any request within the row limit
    // exercises the row checks too.
    if task.rows.len() > MAX_ROWS {
        assert!(!accepted, "accepted {} rows", task.rows.len());
        return;
    }
    let v = validate_rows(&task.rows);
    assert_eq!(v.rows, task.rows.len());
    assert_eq!(v.invalid_count, v.invalid.len());
    assert!(
        v.invalid.windows(2).all(|w| w[0].row < w[1].row),
        "invalid rows in order"
    );
    assert!(v.invalid.last().is_none_or(|r| r.row < task.rows.len()));
    let (mut debit, mut credit) = (0i128, 0i128);
    let mut invalid = v.invalid.iter().map(|r| r.row).peekable();
    for (i, row) in task.rows.iter().enumerate() {
        if invalid.next_if_eq(&i).is_some() {
            continue;
        }
        assert!(
            row.debit_cents >= 0 && row.credit_cents >= 0,
            "accepted a negative row {i}"
        );
        assert!((row.debit_cents == 0) != (row.credit_cents == 0), "accepted row {i}");
        debit += i128::from(row.debit_cents);
        credit += i128::from(row.credit_cents);
    }
    assert_eq!(i128::from(v.total_debit_cents), debit);
    assert_eq!(i128::from(v.total_credit_cents), credit);
    assert_eq!(v.balanced, debit == credit);
}

/// `--policy FILE`: any text either parses into a valid policy or fails with
/// an error naming the file; a valid policy written back as TOML reads back
/// the same.
pub fn policy_toml(data: &[u8]) {
    // The file is read with `read_to_string`: bytes that are not UTF-8 are a
    // read error before the parser sees them.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let policy = match Policy::from_toml(text, "fuzz.toml") {
        Ok(policy) => policy,
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("fuzz.toml") || message.starts_with("invalid policy"),
                "the error names the file: {message}"
            );
            return;
        }
    };
    policy.validate().expect("a parsed policy is valid");
    let written = toml::to_string(&policy).expect("a valid policy serialises");
    let again = Policy::from_toml(&written, "written.toml")
        .unwrap_or_else(|e| panic!("{policy:?} written as\n{written}\ndoes not read back: {e}"));
    assert_eq!(again, policy, "round trip through\n{written}");
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every seed file of a target, plus a few inputs a fuzzer finds at once.
    fn inputs(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
        let mut all: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| std::fs::read(f.unwrap().path()).unwrap())
            .collect();
        assert!(!all.is_empty(), "{} has seeds", dir.display());
        all.extend(
            [
                &b""[..],
                b"{",
                b"[]",
                b"\xff\xfe",
                b"{\"rows\":[",
                b"null",
                b"1e999",
                b"\"\\ud800\"",
            ]
            .map(<[u8]>::to_vec),
        );
        all
    }

    #[test]
    fn book_json_holds_on_seeds() {
        inputs("book_json").iter().for_each(|i| super::book_json(i));
    }

    #[test]
    fn task_json_holds_on_seeds() {
        inputs("task_json").iter().for_each(|i| super::task_json(i));
    }

    #[test]
    fn policy_toml_holds_on_seeds() {
        inputs("policy_toml").iter().for_each(|i| super::policy_toml(i));
    }
}
