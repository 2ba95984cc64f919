//! TEMPORARY STUB: replaced by the real permessage-deflate.
use crate::handshake::Extension;
use crate::{Error, Role};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: u8,
    pub client_max_window_bits: u8,
}
impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}
impl DeflateParams {
    pub fn response_header(&self) -> String {
        "permessage-deflate".into()
    }
}
pub fn client_offer() -> Extension {
    crate::handshake::parse_extensions("permessage-deflate; client_max_window_bits")
        .unwrap()
        .remove(0)
}
pub fn server_accept(_offers: &[Extension]) -> Option<DeflateParams> {
    None
}
pub fn client_accept(_offered: &Extension, _response: &Extension) -> Result<DeflateParams, Error> {
    Err(Error::Extension("stub".into()))
}
#[derive(Debug)]
pub struct PerMessageDeflate {
    params: DeflateParams,
}
impl PerMessageDeflate {
    pub fn new(_role: Role, params: DeflateParams) -> Self {
        PerMessageDeflate { params }
    }
    pub fn compress(&mut self, _payload: &[u8], _out: &mut Vec<u8>) -> Result<(), Error> {
        Err(Error::Inflate("stub".into()))
    }
    pub fn decompress_chunk(
        &mut self,
        _data: &[u8],
        _out: &mut Vec<u8>,
        _limit: usize,
    ) -> Result<(), Error> {
        Err(Error::Inflate("stub".into()))
    }
    pub fn finish_message(&mut self, _out: &mut Vec<u8>, _limit: usize) -> Result<(), Error> {
        Err(Error::Inflate("stub".into()))
    }
    pub fn params(&self) -> DeflateParams {
        self.params
    }
}
