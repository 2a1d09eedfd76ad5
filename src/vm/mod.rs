//! QEMU guests: argv builder, initramfs builder, KVM probe, boot and watchdog.
