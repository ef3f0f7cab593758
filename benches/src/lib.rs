//! Empty library target: this package only hosts the criterion benches.
