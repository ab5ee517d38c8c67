//! `ip/len` CIDR blocks as ztunnel accepts them: the length is required, host bits are
//! allowed (`10.0.0.1/8` ≡ `10.0.0.0/8`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// No `/len` (a bare address is not accepted).
    #[error("{0:?} has no prefix length (write ip/len)")]
    NoPrefixLength(String),
    /// The address does not parse.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The length is not a number within the family's bits.
    #[error("{0:?} has an invalid prefix length")]
    PrefixLength(String),
}

impl Cidr {
    /// The block of `address` with `prefix` leading bits (`None` past the family's width).
    pub fn new(address: IpAddr, prefix: u8) -> Option<Self> {
        let bits = if address.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then_some(Cidr { address, prefix })
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.address, ip) {
            (IpAddr::V4(block), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(block) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(block), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(block) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4 (ztunnel canonicalises peer addresses so).
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| CidrError::NoPrefixLength(text.to_owned()))?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address(text.to_owned()))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| CidrError::PrefixLength(text.to_owned()))?;
        Cidr::new(address, prefix).ok_or_else(|| CidrError::PrefixLength(text.to_owned()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_need_a_length_and_ignore_host_bits() {
        let block: Cidr = "10.0.0.1/8".parse().unwrap();
        assert!(block.contains("10.200.0.1".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        assert!(
            block.contains("::ffff:10.1.2.3".parse().unwrap()),
            "mapped IPv4"
        );
        assert!(matches!(
            "10.0.0.1".parse::<Cidr>(),
            Err(CidrError::NoPrefixLength(_))
        ));
        assert!(matches!(
            "10.0.0.1/33".parse::<Cidr>(),
            Err(CidrError::PrefixLength(_))
        ));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let v6: Cidr = "fd00::/64".parse().unwrap();
        assert!(v6.contains("fd00::5".parse().unwrap()));
        assert!(!v6.contains("fd01::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
    }
}
