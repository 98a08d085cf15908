//! Linux file-system encryption (fscrypt, v2 policies) for encrypted workspace volumes: the
//! kernel's ioctls that add a raw key to a mounted ext4 file system, remove it (locking every
//! file it opened) and set a directory's policy, as `linux/fscrypt.h` defines them. The kernel
//! derives each file's key from the raw key and encrypts contents (AES-256-XTS) and names
//! (AES-256-CTS); the raw key lives only in the kernel's keyring of that file system.

use std::os::fd::AsRawFd as _;
use std::path::Path;

use zeroize::Zeroize as _;

/// Bytes of a raw key (the largest the kernel takes, as its documentation recommends).
pub(crate) const KEY_SIZE: usize = 64;
/// Bytes of the identifier the kernel derives from a key.
pub(crate) const IDENTIFIER_SIZE: usize = 16;

const KEY_SPEC_TYPE_IDENTIFIER: u32 = 2;
const POLICY_V2: u8 = 2;
const MODE_AES_256_XTS: u8 = 1;
const MODE_AES_256_CTS: u8 = 4;
const POLICY_FLAGS_PAD_32: u8 = 0x03;

#[repr(C)]
struct KeySpecifier {
    kind: u32,
    reserved: u32,
    identifier: [u8; 32],
}

#[repr(C)]
struct AddKeyArg {
    key_spec: KeySpecifier,
    raw_size: u32,
    key_id: u32,
    reserved: [u32; 8],
    raw: [u8; KEY_SIZE],
}

#[repr(C)]
struct RemoveKeyArg {
    key_spec: KeySpecifier,
    removal_status_flags: u32,
    reserved: [u32; 5],
}

#[repr(C)]
struct PolicyV2 {
    version: u8,
    contents_encryption_mode: u8,
    filenames_encryption_mode: u8,
    flags: u8,
    reserved: [u8; 4],
    master_key_identifier: [u8; IDENTIFIER_SIZE],
}

// The request codes encode the size of the struct without its flexible `raw` array (add) and,
// for historical reasons, the v1 policy's 12 bytes (set policy).
type Request = nix::sys::ioctl::ioctl_num_type;
const ADD_KEY: Request = nix::request_code_readwrite!(b'f', 23, 80);
const REMOVE_KEY: Request = nix::request_code_readwrite!(b'f', 24, std::mem::size_of::<RemoveKeyArg>());
const SET_POLICY: Request = nix::request_code_read!(b'f', 19, 12);

fn ioctl<T>(path: &Path, request: Request, arg: &mut T) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    // SAFETY: `arg` is a live, properly laid out `#[repr(C)]` struct of the type the request
    // code names, and the descriptor stays open for the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, arg as *mut T) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Adds `key` to the keyring of the file system mounted at `root`; returns its identifier.
pub(crate) fn add_key(root: &Path, key: &[u8; KEY_SIZE]) -> std::io::Result<[u8; IDENTIFIER_SIZE]> {
    let mut arg = AddKeyArg {
        key_spec: KeySpecifier { kind: KEY_SPEC_TYPE_IDENTIFIER, reserved: 0, identifier: [0; 32] },
        raw_size: KEY_SIZE as u32,
        key_id: 0,
        reserved: [0; 8],
        raw: *key,
    };
    let r = ioctl(root, ADD_KEY, &mut arg);
    arg.raw.zeroize();
    r?;
    let mut id = [0; IDENTIFIER_SIZE];
    id.copy_from_slice(&arg.key_spec.identifier[..IDENTIFIER_SIZE]);
    Ok(id)
}

/// Removes key `id` from the file system mounted at `root`: its files are locked again (those
/// still open stay readable until closed). Removing an absent key is not an error.
pub(crate) fn remove_key(root: &Path, id: &[u8; IDENTIFIER_SIZE]) -> std::io::Result<()> {
    let mut identifier = [0; 32];
    identifier[..IDENTIFIER_SIZE].copy_from_slice(id);
    let mut arg = RemoveKeyArg {
        key_spec: KeySpecifier { kind: KEY_SPEC_TYPE_IDENTIFIER, reserved: 0, identifier },
        removal_status_flags: 0,
        reserved: [0; 5],
    };
    match ioctl(root, REMOVE_KEY, &mut arg) {
        Err(e) if e.raw_os_error() == Some(libc::ENOKEY) => Ok(()),
        other => other,
    }
}

/// Makes the empty directory `dir` encrypted with key `id` (which must have been added).
pub(crate) fn set_policy(dir: &Path, id: &[u8; IDENTIFIER_SIZE]) -> std::io::Result<()> {
    let mut policy = PolicyV2 {
        version: POLICY_V2,
        contents_encryption_mode: MODE_AES_256_XTS,
        filenames_encryption_mode: MODE_AES_256_CTS,
        flags: POLICY_FLAGS_PAD_32,
        reserved: [0; 4],
        master_key_identifier: *id,
    };
    ioctl(dir, SET_POLICY, &mut policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_codes_are_the_kernels() {
        // From linux/fscrypt.h, as the kernel's own headers spell them.
        assert_eq!(ADD_KEY, 0xc050_6617);
        assert_eq!(REMOVE_KEY, 0xc040_6618);
        assert_eq!(SET_POLICY, 0x800c_6613);
        assert_eq!(std::mem::size_of::<PolicyV2>(), 24);
        assert_eq!(std::mem::size_of::<AddKeyArg>(), 80 + KEY_SIZE);
    }
}
