//! Helpers shared by the end-to-end tests: start binaries, wait for conditions, read the HTTP API.
