//! The Acme module that `docs/modules.md` writes, built from the guide itself: its
//! Rust blocks, in order, are this file (`build.rs` extracts them), so the guide cannot
//! show code that does not compile, its unit tests run with the workspace's, and
//! `tests/tests/guide.rs` runs the guide's conformance commands on `libacme.so`.
//!
//! A compile error here points into `$OUT_DIR/guide.rs`, whose comments give the line
//! of `docs/modules.md` each block starts at.

include!(concat!(env!("OUT_DIR"), "/guide.rs"));
