//! JSON: the contract other tools read (`--json` on stdout, report.json in --out).

use serde::Serialize;

pub fn to_string<T: Serialize>(value: &T) -> String {
    // Serialising plain data with string keys cannot fail.
    serde_json::to_string_pretty(value).expect("report serialises")
}
