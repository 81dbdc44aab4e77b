//! The version of the JSON documents the command line prints and the HTTP API serves (`docs/API.md`): an
//! object carries it as `schema_version`, an HTTP response also as the `Headroom-Schema` header.
//!
//! Within a version fields are only added; a field renamed, removed or given another type raises it. The
//! sizing report and the review carry their own versions (`docs/SIZING.md`).

use serde::Serialize;

/// The version of the JSON of `fleet`, `hosts`, `outliers`, `alarms`, `cert list`, `token list`, `headroom-agent
/// sample`, the HTTP API and the web view's JSON.
pub const SCHEMA_VERSION: u32 = 1;

/// The HTTP response header that carries the version on every JSON response, arrays and errors included.
pub const SCHEMA_HEADER: &str = "Headroom-Schema";

/// An object document with `schema_version` first and the fields of `body` after it.
#[derive(Debug, Serialize)]
pub struct Versioned<'a, T: Serialize + ?Sized> {
    pub schema_version: u32,
    #[serde(flatten)]
    pub body: &'a T,
}

/// `body` as a versioned document: `body` must serialize as an object.
pub fn versioned<T: Serialize + ?Sized>(body: &T) -> Versioned<'_, T> {
    Versioned {
        schema_version: SCHEMA_VERSION,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Body {
        host: &'static str,
    }

    #[test]
    fn the_version_comes_first_and_the_body_fields_follow() {
        let text = serde_json::to_string(&versioned(&Body { host: "web-1" })).unwrap();
        assert_eq!(text, r#"{"schema_version":1,"host":"web-1"}"#);
    }
}
