//! The tokio shell over hublink-core (issue 4 fills this in).
