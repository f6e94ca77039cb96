//! sysctlbyname on macOS.

use std::ffi::CString;

fn raw(name: &str) -> Option<Vec<u8>> {
    let cname = CString::new(name).ok()?;
    let mut len: libc::size_t = 0;
    // SAFETY: first call asks for the size only.
    let rc = unsafe {
        libc::sysctlbyname(
            cname.as_ptr(),
            std::ptr::null_mut(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || len == 0 {
        return None;
    }
    let mut buf = vec![0u8; len];
    // SAFETY: buf has len bytes.
    let rc = unsafe {
        libc::sysctlbyname(
            cname.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0).then(|| {
        buf.truncate(len);
        buf
    })
}

pub fn string(name: &str) -> Option<String> {
    let b = raw(name)?;
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    Some(String::from_utf8_lossy(&b[..end]).into_owned())
}

pub fn u64(name: &str) -> Option<u64> {
    let b = raw(name)?;
    match b.len() {
        4 => Some(u32::from_ne_bytes(b[..4].try_into().ok()?) as u64),
        8 => Some(u64::from_ne_bytes(b[..8].try_into().ok()?)),
        _ => None,
    }
}
