//! The codec of every generated client and server: prost's, except that a
//! request the server cannot decode is INVALID_ARGUMENT naming the message
//! and the field, instead of tonic's INTERNAL "failed to decode Protobuf
//! message".
//!
//! A request that does not decode (a string field that is not UTF-8, a
//! truncated field, a wrong wire type) is the caller's mistake, not the
//! daemon's: libvirt answers VIR_ERR_INVALID_ARG for such calls too. A
//! response a client cannot decode stays INTERNAL (the server sent
//! something broken). Requests are told from responses by their name: every
//! message a client sends is a `*Request` (the API's naming rule).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// [`tonic_prost::ProstCodec`] with [`VirtDecoder`] (see the module docs).
#[derive(Debug, Clone)]
pub struct VirtCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for VirtCodec<T, U> {
    fn default() -> Self {
        VirtCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for VirtCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = VirtDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        VirtDecoder::default()
    }
}

/// Decodes `U` with prost; see the module docs for the error it gives.
/// Hand-written codecs of the daemons (fast paths that send pre-encoded
/// replies) decode their requests with it too.
#[derive(Debug, Clone)]
pub struct VirtDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U> Default for VirtDecoder<U> {
    fn default() -> Self {
        VirtDecoder { _pd: PhantomData }
    }
}

/// The buffers of a call's messages: 1 KiB to start with (tonic's 8 KiB
/// default), grown when a message needs more. Nearly every message of the
/// API is under 1 KiB; a long-lived stream (an event watch) keeps its
/// buffers for its whole life, and every call in flight holds two, so the
/// default made each daemon's resident set creep up as more of those pages
/// were touched under load (docs/reliability.md, "Load and leaks").
fn buffers() -> BufferSettings {
    BufferSettings::new(1024, 32 * 1024)
}

impl<U: Message + Default> Decoder for VirtDecoder<U> {
    type Item = U;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        buffers()
    }

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| decode_error(&message_name::<U>(), &e))
    }
}

/// The protobuf name of a generated message type:
/// `proto::storage::v1::CreateVolumeRequest` → `virt.storage.v1.CreateVolumeRequest`.
fn message_name<U>() -> String {
    let rust = std::any::type_name::<U>();
    match rust.strip_prefix("proto::") {
        Some(rest) => format!("virt.{}", rest.replace("::", ".")),
        None => rust.to_owned(),
    }
}

/// The status of a message `name` that did not decode.
fn decode_error(name: &str, e: &prost::DecodeError) -> Status {
    let short = name.rsplit('.').next().unwrap_or(name);
    if !short.ends_with("Request") {
        // tonic's own mapping: a reply that does not decode is the server's fault.
        return Status::internal(e.to_string());
    }
    let detail = crate::common::v1::ErrorDetail {
        code: 8,
        code_name: "INVALID_ARG".to_owned(),
        domain: 7,
        domain_name: "RPC".to_owned(),
    };
    Status::with_details(
        tonic::Code::InvalidArgument,
        format!("invalid argument: the request message {name} cannot be decoded: {e}"),
        detail.encode_to_vec().into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_proto_package() {
        assert_eq!(
            message_name::<crate::storage::v1::CreateVolumeRequest>(),
            "virt.storage.v1.CreateVolumeRequest"
        );
    }

    #[test]
    fn a_request_that_does_not_decode_is_invalid_argument_naming_the_field() {
        // Field 1 (xml, a string) holding bytes that are not UTF-8.
        let wire = [0x0a, 0x02, 0xff, 0xfe];
        let err = crate::domain::v1::DefineXmlRequest::decode(&wire[..]).unwrap_err();
        let s = decode_error(&message_name::<crate::domain::v1::DefineXmlRequest>(), &err);
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(
            s.message()
                .contains("virt.domain.v1.DefineXmlRequest cannot be decoded"),
            "{}",
            s.message()
        );
        assert!(
            s.message().contains("DefineXmlRequest.xml"),
            "{}",
            s.message()
        );
        let d = crate::common::v1::ErrorDetail::decode(s.details()).expect("detail");
        assert_eq!(d.code_name, "INVALID_ARG");
    }

    #[test]
    fn a_reply_that_does_not_decode_stays_internal() {
        let wire = [0x0a, 0x02, 0xff, 0xfe];
        let err = crate::domain::v1::GetXmlResponse::decode(&wire[..]).unwrap_err();
        let s = decode_error(&message_name::<crate::domain::v1::GetXmlResponse>(), &err);
        assert_eq!(s.code(), tonic::Code::Internal);
    }
}
