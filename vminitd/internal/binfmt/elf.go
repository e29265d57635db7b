package binfmt

import (
	"debug/elf"
	"encoding/binary"
)

// elfHeaderLen is how much of the ELF header a rule matches: e_ident (16
// bytes), e_type (2) and e_machine (2).
const elfHeaderLen = 20

// elfMatch returns the magic and mask matching a 64-bit little-endian Linux
// executable for machine, built from the header fields rather than copied as
// a table. Byte by byte:
//
//	0-3    EI_MAG0..3     "\x7fELF"                       must match
//	4      EI_CLASS       ELFCLASS64 (2)                  must match
//	5      EI_DATA        ELFDATA2LSB (1), little-endian  must match (see x86)
//	6      EI_VERSION     EV_CURRENT (1)                  must match (see x86)
//	7      EI_OSABI       ignored (mask 0): toolchains write 0 (System V) or
//	                      3 (GNU/Linux, once a binary uses IFUNCs)
//	8      EI_ABIVERSION  0                               must match
//	9-15   EI_PAD         0                               must match
//	16-17  e_type         ET_EXEC (2), little-endian, with bit 0 of the low
//	                      byte masked off so ET_DYN (3) matches too: PIE
//	                      executables and the dynamic loader are ET_DYN.
//	                      Relocatable objects (1) and cores (4) do not.
//	18-19  e_machine      machine, little-endian          must match
//
// looseIdent also masks bit 0 of EI_DATA and EI_VERSION (mask 0xfe, so 0
// matches as well as 1): qemu-binfmt-conf.sh does so for its x86 entries,
// and Apple's containerization registers the same bytes for Rosetta. We
// keep it for x86_64 so that our rule is byte for byte the one users and
// tools already know and compare against in /proc/sys/fs/binfmt_misc; a
// header with 0 there is malformed anyway, so nothing real changes.
func elfMatch(machine elf.Machine, looseIdent bool) (magic, mask []byte) {
	magic = make([]byte, elfHeaderLen)
	copy(magic, elf.ELFMAG)
	magic[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	magic[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	magic[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(magic[elf.EI_NIDENT:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(magic[elf.EI_NIDENT+2:], uint16(machine))

	mask = make([]byte, elfHeaderLen)
	for i := range mask {
		mask[i] = 0xff
	}
	mask[elf.EI_OSABI] = 0x00
	mask[elf.EI_NIDENT] = 0xfe // e_type's low byte: ET_EXEC or ET_DYN
	if looseIdent {
		mask[elf.EI_DATA] = 0xfe
		mask[elf.EI_VERSION] = 0xfe
	}
	return magic, mask
}
