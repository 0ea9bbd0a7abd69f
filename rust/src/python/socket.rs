//! Reading a socket straight into the frame decoder's buffer.
//!
//! The event loop owns the socket (trio waits for it to be readable); the
//! tracker engine only reads from its descriptor what is already there,
//! into the spare capacity of its input buffer. Python's `recv` would make
//! a bytes object of every read, which the engine would then copy: at a
//! million events a second that is ~250 MB/s of allocation and copying,
//! and the allocator's churn of fresh pages, for nothing.

use std::io;
use std::os::raw::c_int;

use bytes::BytesMut;

/// `recv(2)` from `fd` (a non-blocking socket) onto the end of `buf`: at
/// most its spare capacity. `Ok(0)` is the end of the stream; a socket with
/// nothing to read gives `ErrorKind::WouldBlock`. Retries on `EINTR`.
#[allow(unsafe_code)]
pub(crate) fn recv_into(fd: c_int, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let n = loop {
        // SAFETY: `spare` is writable memory of `spare.len()` bytes that we
        // borrow mutably for the call; recv writes at most that many bytes
        // into it and keeps no pointer to it. An invalid or closed `fd` is
        // an error (EBADF, ENOTSOCK), not undefined behaviour.
        let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), spare.len(), 0) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    // SAFETY: recv initialised the first `n` bytes of the spare capacity,
    // and `n` is at most its length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}
