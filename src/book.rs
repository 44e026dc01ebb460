//! Building the book (placeholder: being written).
pub fn command(_serve: bool, _port: u16) -> Result<(), String> {
    Err("not yet".into())
}
pub fn bench() -> Result<(), String> {
    Err("not yet".into())
}
