"""Pure rules of Tidings: no SQL, HTTP or I/O imports here, only the standard library."""
