//! MIT keytab (being written).
