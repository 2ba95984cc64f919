//! Finding the interface to capture on: its index (what a packet socket
//! binds to) and its hardware type, which says what link header its
//! packets carry. Nothing here needs privileges, so a mistyped name or an
//! interface wscope cannot read is reported before permissions are.

use std::ffi::{CStr, CString};

use anyhow::bail;

/// LINKTYPE_ETHERNET, in files and to the decoder (DLT_EN10MB to libpcap).
const LINKTYPE_ETHERNET: i32 = 1;
/// LINKTYPE_RAW: IPv4 or IPv6, no link header.
const LINKTYPE_RAW: i32 = 101;
/// libpcap's DLT_RAW on Linux (LINKTYPE_RAW in files).
const DLT_RAW: i32 = 12;

/// What a packet on the interface starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// An Ethernet header: Ethernet devices, and loopback, whose packets
    /// carry one with zero addresses.
    Ethernet,
    /// The IP header itself (tun devices, WireGuard: ARPHRD_NONE).
    RawIp,
}

impl Link {
    /// The LINKTYPE_ value written to files and given to the decoder.
    pub fn linktype(self) -> i32 {
        match self {
            Link::Ethernet => LINKTYPE_ETHERNET,
            Link::RawIp => LINKTYPE_RAW,
        }
    }

    /// The DLT_ value libpcap compiles filters for.
    pub fn dlt(self) -> i32 {
        match self {
            Link::Ethernet => LINKTYPE_ETHERNET,
            Link::RawIp => DLT_RAW,
        }
    }
}

/// An interface that exists and that wscope can capture on.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub link: Link,
    /// Loopback: every packet is seen twice (going out and coming in).
    pub loopback: bool,
}

/// The interface called `name`, or why it cannot be captured on.
pub fn find(name: &str) -> anyhow::Result<Interface> {
    let names = names();
    let cname = CString::new(name)
        .ok()
        .filter(|_| name.len() < libc::IFNAMSIZ);
    // SAFETY: a NUL-terminated string; the call only reads it.
    let index = cname
        .as_ref()
        .map_or(0, |c| unsafe { libc::if_nametoindex(c.as_ptr()) });
    if index == 0 {
        let hint = if name == "any" {
            " (wscope captures on one interface at a time; for all of them use `tcpdump -i any -U -w - | wscope read -`)"
        } else {
            ""
        };
        bail!(
            "there is no network interface named {name:?}{hint}; this machine has: {}",
            names.join(", ")
        );
    }
    let hardware = hardware_type(name)?;
    let (link, loopback) = match hardware {
        libc::ARPHRD_ETHER => (Link::Ethernet, false),
        libc::ARPHRD_LOOPBACK => (Link::Ethernet, true),
        libc::ARPHRD_NONE => (Link::RawIp, false),
        other => bail!(
            "{name}'s link layer is {} (ARPHRD {other}); wscope captures on Ethernet, loopback \
             and raw IP (tun, WireGuard) interfaces: for this one, use \
             `tcpdump -i {name} -U -w - | wscope read -`",
            hardware_name(other)
        ),
    };
    Ok(Interface {
        name: name.to_owned(),
        index,
        link,
        loopback,
    })
}

/// The names of the machine's interfaces, in index order.
fn names() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry (or
    // null), freed with if_freenameindex once read.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut entry = list;
        while (*entry).if_index != 0 && !(*entry).if_name.is_null() {
            out.push(
                CStr::from_ptr((*entry).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

/// The interface's ARPHRD_ hardware type (SIOCGIFHWADDR, asked through
/// an ordinary UDP socket: no privileges needed).
fn hardware_type(name: &str) -> anyhow::Result<u16> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: a plain socket call; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!(
            "cannot ask about interface {name}: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: fd was just created and is not owned elsewhere.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request.ifr_name.iter_mut().zip(name.as_bytes()) {
        *to = *from as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `request`, which outlives the call.
    let done = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFHWADDR, &mut request) };
    if done < 0 {
        bail!(
            "cannot ask about interface {name}: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: SIOCGIFHWADDR answered in the hardware-address member.
    Ok(unsafe { request.ifr_ifru.ifru_hwaddr.sa_family })
}

/// A name for the hardware types people meet, for the refusal.
fn hardware_name(hardware: u16) -> &'static str {
    match hardware {
        libc::ARPHRD_PPP => "PPP",
        libc::ARPHRD_IEEE80211_RADIOTAP => "Wi-Fi monitor (radiotap)",
        libc::ARPHRD_IEEE80211 => "Wi-Fi (802.11)",
        libc::ARPHRD_INFINIBAND => "InfiniBand",
        libc::ARPHRD_IPGRE => "GRE tunnel",
        libc::ARPHRD_SIT => "IPv6-in-IPv4 tunnel",
        libc::ARPHRD_TUNNEL | libc::ARPHRD_TUNNEL6 => "IP tunnel",
        libc::ARPHRD_CAN => "CAN bus",
        _ => "one wscope does not know",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_ethernet_and_seen_twice() {
        let lo = find("lo").expect("every Linux machine has lo");
        assert_eq!(lo.link, Link::Ethernet);
        assert!(lo.loopback);
        assert!(lo.index > 0);
    }

    #[test]
    fn a_missing_interface_is_named_with_those_that_exist() {
        let err = find("nosuch0").unwrap_err().to_string();
        assert!(err.contains("\"nosuch0\""), "{err}");
        assert!(err.contains("lo"), "{err}");
        let err = find("a-name-longer-than-ifnamsiz").unwrap_err().to_string();
        assert!(err.starts_with("there is no network interface"), "{err}");
    }
}
