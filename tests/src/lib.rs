//! Shared harness of the cross-crate tests (fault proxy, server processes).
