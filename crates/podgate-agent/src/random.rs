//! Random identifiers from the kernel (no libc or userspace RNG state needed in PID 1).

/// `n` lowercase base32 characters from /dev/urandom.
pub fn token(n: usize) -> String {
    let mut b = vec![0u8; n];
    if let Ok(f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut &f, &mut b);
    }
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    b.iter().map(|x| alphabet[(x & 31) as usize] as char).collect()
}
