//! Fuzzes the PROXY v1/v2 parser in every mode. It must never panic; a complete header must fit
//! in the input, and re-encoding is stable: the encoded bytes parse to the same command,
//! transport and addresses and encode to the same bytes again (a CRC32C TLV is recomputed on
//! encoding, so its value may differ from the input's); an incomplete result must ask for more
//! bytes than were given.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use hbone::proxy_protocol::{AcceptVersions, ParseOptions, ParseStatus, Strictness, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let options = ParseOptions {
        versions: match mode % 3 {
            0 => AcceptVersions::Both,
            1 => AcceptVersions::V1,
            _ => AcceptVersions::V2,
        },
        strictness: if mode & 0x80 == 0 {
            Strictness::Strict
        } else {
            Strictness::Lenient
        },
        max_v2_len: if mode & 0x40 == 0 { 4096 } else { 16 + 65535 },
    };
    match parse(input, &options) {
        Ok(ParseStatus::Complete { header, len }) => {
            assert!(len <= input.len());
            let mut encoded = Vec::new();
            if header.encode(&mut encoded).is_ok() {
                let Ok(ParseStatus::Complete { header: again, len }) = parse(&encoded, &options)
                else {
                    panic!("{header:?} re-encoded to {encoded:?} does not parse");
                };
                assert_eq!(len, encoded.len());
                assert_eq!(
                    (again.command, again.transport, &again.addresses),
                    (header.command, header.transport, &header.addresses)
                );
                let mut encoded_again = Vec::new();
                assert!(again.encode(&mut encoded_again).is_ok());
                assert_eq!(encoded_again, encoded);
            }
        }
        Ok(ParseStatus::Incomplete { needed }) => assert!(needed > input.len()),
        Err(_) => {}
    }
});
