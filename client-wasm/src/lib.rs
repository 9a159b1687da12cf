//! Browser shell of hublink over hublink-core (issue 5 fills this in).
