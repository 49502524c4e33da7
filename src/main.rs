fn main() {
    println!("cosmount {}", env!("CARGO_PKG_VERSION"));
}
