//! Network namespaces, veth links, addresses and MTUs.
