//! A Linux packet socket (AF_PACKET, SOCK_RAW) on one interface: every
//! packet with its link header, its capture time in nanoseconds
//! (SO_TIMESTAMPNS) and its length on the wire (PACKET_AUXDATA), cut to
//! the snap length.
//!
//! Set up as libpcap does: the socket is created listening to nothing,
//! given a filter that drops everything, bound to the interface, drained,
//! and only then given the real filter (or none), so that no packet from
//! before the filter (or from another interface) is ever read. On
//! loopback the kernel shows each packet twice, going out and coming in;
//! the outgoing copy is skipped, as libpcap does. A VLAN tag that the
//! network card stripped (it is in the auxiliary data) is put back.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::interface::{Interface, Link};

/// The socket's receive buffer: what absorbs a burst while the decoder
/// catches up (libpcap's default ring is 2 MiB).
const RECEIVE_BUFFER: libc::c_int = 8 << 20;

/// Room in front of the snap length for a VLAN tag put back.
pub const VLAN_TAG: usize = 4;

/// `SOL_PACKET` options and `tpacket_auxdata.tp_status` bits (linux/if_packet.h).
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_OUTGOING: u8 = 4;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const ETH_P_8021Q: u16 = 0x8100;

/// BPF_RET | BPF_K with 0: keep nothing of any packet.
const DROP_ALL: [libc::sock_filter; 1] = [libc::sock_filter {
    code: 0x06,
    jt: 0,
    jf: 0,
    k: 0,
}];

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AuxData {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    vlan_tci: u16,
    vlan_tpid: u16,
}

/// `struct tpacket_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Stats {
    packets: u32,
    drops: u32,
}

/// Why the socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "capturing packets needs the CAP_NET_RAW capability, which this process does not have: \
         run wscope as root (sudo), or grant it to wscope once with \
         `sudo setcap cap_net_raw+ep $(command -v wscope)`"
    )]
    Permission,
    #[error("the kernel refused the capture filter: {0}")]
    Filter(io::Error),
    #[error("cannot capture on {interface}: {error}")]
    Other { interface: String, error: io::Error },
}

/// A packet just received into the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// How many bytes of the buffer hold the packet.
    pub captured: usize,
    /// Its length on the wire.
    pub orig_len: u32,
}

/// What a read gave.
pub enum Next {
    Packet(Received),
    /// A packet that is not kept (loopback's outgoing copy).
    Skipped,
    /// Nothing waiting.
    Empty,
}

/// An open packet socket.
pub struct PacketSocket {
    fd: OwnedFd,
    link: Link,
    loopback: bool,
    snaplen: usize,
}

impl PacketSocket {
    /// Opens a socket on `interface` that keeps `snaplen` bytes of each
    /// packet, with `program` (a compiled capture filter) in the kernel.
    pub fn open(
        interface: &Interface,
        snaplen: u32,
        program: Option<&[libc::sock_filter]>,
    ) -> Result<PacketSocket, OpenError> {
        let other = |error: io::Error| OpenError::Other {
            interface: interface.name.clone(),
            error,
        };
        // Protocol 0: nothing arrives until the socket is bound.
        // SAFETY: a plain socket call; the descriptor is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => OpenError::Permission,
                _ => other(err),
            });
        }
        // SAFETY: fd was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let socket = PacketSocket {
            fd,
            link: interface.link,
            loopback: interface.loopback,
            snaplen: snaplen as usize,
        };
        socket
            .set(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1i32)
            .map_err(other)?;
        socket
            .set(libc::SOL_PACKET, PACKET_AUXDATA, &1i32)
            .map_err(other)?;
        // Past net.core.rmem_max when privileged enough, else up to it.
        if socket
            .set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RECEIVE_BUFFER)
            .is_err()
        {
            let _ = socket.set(libc::SOL_SOCKET, libc::SO_RCVBUF, &RECEIVE_BUFFER);
        }
        socket.attach(&DROP_ALL).map_err(OpenError::Filter)?;
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = interface.index as i32;
        // SAFETY: `address` is a sockaddr_ll of the length given.
        let bound = unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            return Err(other(io::Error::last_os_error()));
        }
        // Whatever came in before the drop-all filter was attached.
        let mut scratch = [0u8; 64];
        loop {
            // SAFETY: reads into `scratch`, within its length.
            let n = unsafe {
                libc::recv(
                    socket.fd.as_raw_fd(),
                    scratch.as_mut_ptr().cast(),
                    scratch.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                break;
            }
        }
        match program {
            Some(program) => socket.attach(program).map_err(OpenError::Filter)?,
            // The kernel wants an int-sized value, which it ignores.
            None => socket
                .set(libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &0i32)
                .map_err(OpenError::Filter)?,
        }
        // Reading the statistics resets them: count from here on.
        socket.statistics();
        Ok(socket)
    }

    /// Reads the next packet into `buf` (at least the snap length plus
    /// [`VLAN_TAG`] bytes) without waiting.
    pub fn next(&self, buf: &mut [u8]) -> io::Result<Next> {
        let keep = self.snaplen.min(buf.len().saturating_sub(VLAN_TAG));
        // SAFETY: plain data; all zeroes is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: keep,
        };
        // u64s, so that the control messages are aligned.
        let mut control = [0u64; 64];
        // SAFETY: plain data; all zeroes is a valid value.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        message.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in `message` points at live buffers of
        // the lengths given.
        let n = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &mut message,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(Next::Empty),
                _ => Err(err),
            };
        }
        if self.loopback && from.sll_pkttype == PACKET_OUTGOING {
            return Ok(Next::Skipped);
        }
        // With MSG_TRUNC, `n` is the whole length the kernel kept.
        let mut captured = (n as usize).min(keep);
        let mut orig_len = n as u32;
        let mut ts_ns = None;
        let mut aux = None;
        // SAFETY: the CMSG_ macros walk the control buffer the kernel
        // filled, within msg_controllen; each payload is read unaligned.
        unsafe {
            let mut header = libc::CMSG_FIRSTHDR(&message);
            while !header.is_null() {
                let (level, kind) = ((*header).cmsg_level, (*header).cmsg_type);
                let data = libc::CMSG_DATA(header);
                if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
                    let at: libc::timespec = std::ptr::read_unaligned(data.cast());
                    ts_ns = Some(at.tv_sec as u64 * 1_000_000_000 + at.tv_nsec as u64);
                } else if level == libc::SOL_PACKET && kind == PACKET_AUXDATA {
                    aux = Some(std::ptr::read_unaligned(data.cast::<AuxData>()));
                }
                header = libc::CMSG_NXTHDR(&message, header);
            }
        }
        if let Some(aux) = aux {
            // The length before the filter's snap length cut it.
            orig_len = orig_len.max(aux.len);
            if self.link == Link::Ethernet && aux.status & TP_STATUS_VLAN_VALID != 0 {
                let tpid = if aux.status & TP_STATUS_VLAN_TPID_VALID != 0 {
                    aux.vlan_tpid
                } else {
                    ETH_P_8021Q
                };
                captured = put_back_vlan_tag(buf, captured, tpid, aux.vlan_tci).min(self.snaplen);
                orig_len += VLAN_TAG as u32;
            }
        }
        let ts_ns = ts_ns.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(Next::Packet(Received {
            ts_ns,
            captured,
            orig_len,
        }))
    }

    /// Waits until a packet is there or `timeout` has passed.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, alive for the call.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Packets the kernel dropped because the socket's buffer was full
    /// (wscope fell behind), since the last call.
    pub fn dropped(&self) -> u64 {
        u64::from(self.statistics().drops)
    }

    fn statistics(&self) -> Stats {
        let mut stats = Stats::default();
        let mut len = std::mem::size_of::<Stats>() as libc::socklen_t;
        // SAFETY: `stats` is a tpacket_stats of the length given.
        unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut stats as *mut Stats).cast(),
                &mut len,
            );
        }
        stats
    }

    fn attach(&self, program: &[libc::sock_filter]) -> io::Result<()> {
        let program = libc::sock_fprog {
            len: u16::try_from(program.len()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} instructions, more than a filter can have",
                        program.len()
                    ),
                )
            })?,
            filter: program.as_ptr().cast_mut(),
        };
        self.set(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &program)
    }

    fn set<T>(&self, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
        // SAFETY: `value` is the type the option takes, of the length given.
        let done = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if done < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// Puts an 802.1Q tag (`tpid`, `tci`) back after the two MAC addresses of
/// the Ethernet frame in `buf[..captured]`, where the card took it from;
/// returns the new length. `buf` has room for [`VLAN_TAG`] more bytes.
fn put_back_vlan_tag(buf: &mut [u8], captured: usize, tpid: u16, tci: u16) -> usize {
    const MACS: usize = 12;
    if captured < MACS || buf.len() < captured + VLAN_TAG {
        return captured;
    }
    buf.copy_within(MACS..captured, MACS + VLAN_TAG);
    buf[MACS..MACS + 2].copy_from_slice(&tpid.to_be_bytes());
    buf[MACS + 2..MACS + 4].copy_from_slice(&tci.to_be_bytes());
    captured + VLAN_TAG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripped_vlan_tag_goes_back_after_the_addresses() {
        let mut frame: Vec<u8> = (0..12).collect();
        frame.extend([0x08, 0x00, 0x45]);
        let len = frame.len();
        frame.resize(len + VLAN_TAG, 0);
        let len = put_back_vlan_tag(&mut frame, len, 0x8100, 0x0064);
        assert_eq!(len, 19);
        assert_eq!(&frame[..12], &(0..12).collect::<Vec<u8>>()[..]);
        assert_eq!(&frame[12..], &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00, 0x45]);
        // The decoder finds the IP packet behind the tag.
        assert_eq!(
            wscope_capture::link::ip_payload(1, &frame[..len]).unwrap(),
            Some(&[0x45][..])
        );
    }
}
