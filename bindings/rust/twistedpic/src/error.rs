use std::fmt;
use std::ptr;

use twistedpic_sys as sys;

use crate::Code;

/// The result of a twistedpic call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed call: the library's code and message (which names the model,
/// field or file at fault).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: Code,
    message: String,
}

impl Error {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    /// What went wrong, as a code fixed by the C ABI.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The library's explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// Makes a call that reports failure as a tp_code plus a tp_error (tp.h's
/// convention), through [`crate::panic::call`]; the error object is freed here.
pub(crate) fn check(f: impl FnOnce(*mut *mut sys::tp_error) -> sys::tp_code) -> Result<()> {
    crate::panic::call(|| {
        let mut err = ptr::null_mut();
        let code = f(&mut err);
        if code == sys::TP_OK {
            return Ok(());
        }
        // SAFETY: `err` is NULL or an error this call handed to us; it is freed once, here.
        let message = unsafe { crate::owned_str(sys::tp_error_message(err)) };
        unsafe { sys::tp_error_free(err) };
        Err(Error::new(Code::from_raw(code), message))
    })
}
