// Package boot owns what the appliance does between the kernel handing
// over and the UI answering: the configuration partition, the network
// (DHCP or the wizard's static settings), the clock (SNTP), the pool,
// then the server, with a status screen on the console. It runs as the
// u-root initramfs's uinit (`coffer boot`); everything it touches is
// behind Options so that tests run it against a temporary root.
package boot
