//! Link layers: from a captured frame to the IP packet inside it.
//!
//! The link types people capture WebSockets on: Ethernet (with 802.1Q and
//! 802.1ad VLAN tags), Linux "cooked" captures (SLL and SLL2, what
//! `tcpdump -i any` writes), raw IPv4/IPv6, and BSD loopback (null). A
//! frame that carries something other than IP (ARP, LLDP) is not an
//! error, only nothing to decode.

/// LINKTYPE_ values (tcpdump.org/linktypes.html).
mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    pub const RAW_OPENBSD: i32 = 12;
    pub const RAW_BSDOS: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// Why a frame could not be taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The link type is not one wscope reads.
    Unsupported(i32),
    /// Shorter than its own link header.
    Short { needed: usize, got: usize },
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Unsupported(linktype) => write!(
                f,
                "link type {linktype} is not supported (Ethernet, Linux cooked SLL/SLL2, raw IP and BSD loopback are)"
            ),
            LinkError::Short { needed, got } => {
                write!(f, "{got} bytes, shorter than its {needed}-byte link header")
            }
        }
    }
}

/// The IP packet in `frame`, `None` when it carries something else.
pub fn ip_payload(linktype: i32, frame: &[u8]) -> Result<Option<&[u8]>, LinkError> {
    let need = |n: usize| {
        if frame.len() < n {
            Err(LinkError::Short {
                needed: n,
                got: frame.len(),
            })
        } else {
            Ok(())
        }
    };
    match linktype {
        linktype::ETHERNET => {
            need(14)?;
            let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
            let mut at = 14;
            while matches!(
                ethertype,
                ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
            ) {
                need(at + 4)?;
                ethertype = u16::from_be_bytes([frame[at + 2], frame[at + 3]]);
                at += 4;
            }
            Ok(by_ethertype(ethertype, &frame[at..]))
        }
        linktype::LINUX_SLL => {
            need(16)?;
            Ok(by_ethertype(
                u16::from_be_bytes([frame[14], frame[15]]),
                &frame[16..],
            ))
        }
        linktype::LINUX_SLL2 => {
            need(20)?;
            Ok(by_ethertype(
                u16::from_be_bytes([frame[0], frame[1]]),
                &frame[20..],
            ))
        }
        linktype::RAW | linktype::RAW_OPENBSD | linktype::RAW_BSDOS => Ok(by_version(frame)),
        linktype::IPV4 | linktype::IPV6 => Ok(by_version(frame)),
        linktype::NULL | linktype::LOOP => {
            need(4)?;
            // The address family in the capturing host's byte order (NULL)
            // or network order (LOOP); IPv6's value differs between BSDs,
            // so the IP version nibble decides.
            Ok(by_version(&frame[4..]))
        }
        other => Err(LinkError::Unsupported(other)),
    }
}

fn by_ethertype(ethertype: u16, payload: &[u8]) -> Option<&[u8]> {
    matches!(ethertype, ETHERTYPE_IPV4 | ETHERTYPE_IPV6).then_some(payload)
}

fn by_version(packet: &[u8]) -> Option<&[u8]> {
    matches!(packet.first().map(|b| b >> 4), Some(4 | 6)).then_some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: [u8; 4] = [0x45, 0, 0, 20];

    #[test]
    fn ethernet_with_two_vlan_tags() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        frame.extend_from_slice(&IP);
        assert_eq!(ip_payload(1, &frame).unwrap(), Some(&IP[..]));
    }

    #[test]
    fn cooked_and_loopback() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&IP);
        assert_eq!(ip_payload(113, &sll).unwrap(), Some(&IP[..]));
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&[0x60, 0, 0, 0]);
        assert_eq!(ip_payload(276, &sll2).unwrap(), Some(&[0x60, 0, 0, 0][..]));
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&IP);
        assert_eq!(ip_payload(0, &null).unwrap(), Some(&IP[..]));
    }

    #[test]
    fn arp_is_nothing_and_bad_frames_are_errors() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
        assert_eq!(ip_payload(1, &arp).unwrap(), None);
        assert!(matches!(
            ip_payload(1, &[0; 5]),
            Err(LinkError::Short { .. })
        ));
        assert!(matches!(
            ip_payload(147, &IP),
            Err(LinkError::Unsupported(147))
        ));
        assert!(matches!(
            ip_payload(1, &[0x81, 0x00].repeat(7)),
            Err(LinkError::Short { .. }) | Ok(None)
        ));
    }
}
