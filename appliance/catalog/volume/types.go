package volume

// Type names used in Volume.TypeName. GPT and MBR types of the same
// purpose share a name (MBR 0x83 and the GPT Linux filesystem GUID are
// both TypeLinuxFilesystem), so that callers can filter by name.
const (
	TypeEFISystem           = "EFI System"
	TypeBIOSBoot            = "BIOS boot"
	TypeLinuxFilesystem     = "Linux filesystem"
	TypeLinuxLVM            = "Linux LVM"
	TypeLinuxSwap           = "Linux swap"
	TypeLinuxRAID           = "Linux RAID"
	TypeLinuxLUKS           = "Linux LUKS"
	TypeMicrosoftBasicData  = "Microsoft basic data"
	TypeMicrosoftReserved   = "Microsoft reserved"
	TypeWindowsRecovery     = "Windows recovery environment"
	TypeLVMLogicalVolume    = "LVM logical volume"
	TypeExtended            = "Extended"
	TypeGPTProtective       = "GPT protective"
	TypeFAT12               = "FAT12"
	TypeFAT16               = "FAT16"
	TypeFAT32               = "FAT32"
	TypeNTFS                = "NTFS/exFAT"
	TypeMicrosoftLDMData    = "Microsoft LDM data"
	TypeMicrosoftLDMMeta    = "Microsoft LDM metadata"
	TypeLinuxExtendedBoot   = "Linux extended boot"
	TypeLinuxRoot           = "Linux root"
	TypeLinuxHome           = "Linux home"
	TypeLinuxServer         = "Linux server data"
	TypeLinuxVar            = "Linux variable data"
	TypeLinuxVarTmp         = "Linux temporary data"
	TypeLinuxReserved       = "Linux reserved"
	TypeFreeBSDUFS          = "FreeBSD UFS"
	TypeFreeBSDSwap         = "FreeBSD swap"
	TypeAppleHFS            = "Apple HFS/HFS+"
	TypeAppleAPFS           = "Apple APFS"
	TypeZFS                 = "Solaris /usr & Apple ZFS"
	TypeMicrosoftStorageRep = "Microsoft Storage Replica"
)

// gptTypeNames maps GPT partition type GUIDs (lower case) to names.
var gptTypeNames = map[string]string{
	"c12a7328-f81f-11d2-ba4b-00a0c93ec93b": TypeEFISystem,
	"21686148-6449-6e6f-744e-656564454649": TypeBIOSBoot,
	"0fc63daf-8483-4772-8e79-3d69d8477de4": TypeLinuxFilesystem,
	"e6d6d379-f507-44c2-a23c-238f2a3df928": TypeLinuxLVM,
	"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": TypeLinuxSwap,
	"a19d880f-05fc-4d3b-a006-743f0f84911e": TypeLinuxRAID,
	"ca7d7ccb-63ed-4c53-861c-1742536059cc": TypeLinuxLUKS,
	"ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": TypeMicrosoftBasicData,
	"e3c9e316-0b5c-4db8-817d-f92df00215ae": TypeMicrosoftReserved,
	"de94bba4-06d1-4d40-a16a-bfd50179d6ac": TypeWindowsRecovery,
	"af9b60a0-1431-4f62-bc68-3311714a69ad": TypeMicrosoftLDMData,
	"5808c8aa-7e8f-42e0-85d2-e1e90434cfb3": TypeMicrosoftLDMMeta,
	"558d43c5-a1ac-43c0-aac8-d1472b2923d1": TypeMicrosoftStorageRep,
	"bc13c2ff-59e6-4262-a352-b275fd6f7172": TypeLinuxExtendedBoot,
	"4f68bce3-e8cd-4db1-96e7-fbcaf984b709": TypeLinuxRoot, // x86-64
	"b921b045-1df0-41c3-af44-4c6f280d3fae": TypeLinuxRoot, // ARM64
	"69dad710-2ce4-4e3c-b16c-21a1d49abed3": TypeLinuxRoot, // ARM32
	"933ac7e1-2eb4-4f13-b844-0e14e2aef915": TypeLinuxHome,
	"3b8f8425-20e0-4f3b-907f-1a25a76f98e8": TypeLinuxServer,
	"4d21b016-b534-45c2-a9fb-5c16e091fd2d": TypeLinuxVar,
	"7ec6f557-3bc5-4aca-b293-16ef5df639d1": TypeLinuxVarTmp,
	"8da63339-0007-60c0-c436-083ac8230908": TypeLinuxReserved,
	"516e7cb6-6ecf-11d6-8ff8-00022d09712b": TypeFreeBSDUFS,
	"516e7cb5-6ecf-11d6-8ff8-00022d09712b": TypeFreeBSDSwap,
	"48465300-0000-11aa-aa11-00306543ecac": TypeAppleHFS,
	"7c3457ef-0000-11aa-aa11-00306543ecac": TypeAppleAPFS,
	"6a898cc3-1dd2-11b2-99a6-080020736631": TypeZFS,
}

// mbrTypeNames maps MBR partition type bytes to names.
var mbrTypeNames = map[byte]string{
	0x01: TypeFAT12,
	0x04: TypeFAT16,
	0x05: TypeExtended,
	0x06: TypeFAT16,
	0x07: TypeNTFS,
	0x0b: TypeFAT32,
	0x0c: TypeFAT32,
	0x0e: TypeFAT16,
	0x0f: TypeExtended,
	0x27: TypeWindowsRecovery,
	0x42: TypeMicrosoftLDMData,
	0x82: TypeLinuxSwap,
	0x83: TypeLinuxFilesystem,
	0x85: TypeExtended,
	0x8e: TypeLinuxLVM,
	0xaf: TypeAppleHFS,
	0xee: TypeGPTProtective,
	0xef: TypeEFISystem,
	0xfd: TypeLinuxRAID,
}
