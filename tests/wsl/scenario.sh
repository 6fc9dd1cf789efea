#!/usr/bin/env bash
# Dell's wsl ("whistle", Debian package wsl) against `vmsec serve`: enumerate, WQL-filtered
# enumerate, enumerate with association filters, and invoke GetKeyProtector.
# Usage: scenario.sh HOST:PORT USER PASSWORD VM_GUID
# Exits non-zero naming the step that failed.
set -euo pipefail
endpoint=$1 user=$2 password=$3 vm=$4
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export WSENDPOINT="$endpoint" WSUSER="$user" WSPASS="$password"
export WSAUTOMATED=1 KEEPHISTORY=0 OUTPREFIX="$out" OUTLEVEL=1
V2=http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2

fail() { echo "FAILED - $*"; exit 1; }
ok() { echo "ok - $*"; }

wsl enum "$V2/Msvm_SecurityService" >"$out/enum.txt" 2>&1 || fail "wsl enum ran"
grep -q '<p:Name>vmsecuritywmi</p:Name>' "$out/enum.txt" || fail "wsl enum Msvm_SecurityService: $(head -c 600 "$out/enum.txt")"
ok "wsl enumerates Msvm_SecurityService"

VM_UPPER=$(echo "$vm" | tr a-z A-Z)
wsl enum "$V2/*" -dialect http://schemas.microsoft.com/wbem/wsman/1/WQL \
  -filter "SELECT * FROM Msvm_SecuritySettingData WHERE InstanceID = 'Microsoft:$VM_UPPER'" >"$out/wql.txt" 2>&1 || fail "wsl enum with WQL ran"
grep -q "<p:InstanceID>Microsoft:$VM_UPPER</p:InstanceID>" "$out/wql.txt" || fail "WQL enumerate: $(head -c 600 "$out/wql.txt")"
ok "wsl enumerates Msvm_SecuritySettingData with a WQL filter"

# wsl's flags are crossed: -references sends AssociatedInstances, -associators AssociationInstances.
wsl enum "$V2/Msvm_ComputerSystem" -references CreationClassName=Msvm_ComputerSystem "Name=$VM_UPPER" >"$out/assoc.txt" 2>&1 || fail "wsl enum with an association filter ran"
grep -q "<p:VirtualSystemType>Microsoft:Hyper-V:System:Realized</p:VirtualSystemType>" "$out/assoc.txt" || fail "AssociatedInstances reaches the VM's settings: $(head -c 800 "$out/assoc.txt")"
grep -q '<p:Name>vmsecuritywmi</p:Name>' "$out/assoc.txt" || fail "AssociatedInstances reaches the security service: $(head -c 800 "$out/assoc.txt")"
ok "wsl enumerates the VM's associated instances (AssociatedInstances filter)"
wsl enum "$V2/Msvm_ComputerSystem" -associators CreationClassName=Msvm_ComputerSystem "Name=$VM_UPPER" >"$out/refs.txt" 2>&1 || fail "wsl enum with an association filter ran"
grep -q '<p:Msvm_SettingsDefineState ' "$out/refs.txt" || fail "AssociationInstances returns Msvm_SettingsDefineState: $(head -c 800 "$out/refs.txt")"
grep -q '<p:Msvm_ServiceAffectsElement ' "$out/refs.txt" || fail "AssociationInstances returns Msvm_ServiceAffectsElement: $(head -c 800 "$out/refs.txt")"
ok "wsl enumerates the VM's association instances (AssociationInstances filter)"

cat >"$out/ssd.xml" <<XML
<INSTANCE CLASSNAME="Msvm_SecuritySettingData"><PROPERTY NAME="InstanceID" TYPE="string"><VALUE>Microsoft:$VM_UPPER</VALUE></PROPERTY></INSTANCE>
XML
wsl invoke "$V2/Msvm_SecurityService" GetKeyProtector "SecuritySettingData=RFILE:$out/ssd.xml" >"$out/invoke.txt" 2>&1 || fail "wsl invoke ran"
grep -q 'GetKeyProtector_OUTPUT' "$out/invoke.txt" || fail "wsl invoke GetKeyProtector: $(tail -c 800 "$out/invoke.txt")"
grep -q '<p:ReturnValue>0</p:ReturnValue>' "$out/invoke.txt" || fail "GetKeyProtector ReturnValue 0: $(tail -c 800 "$out/invoke.txt")"
grep -q '<p:KeyProtector>' "$out/invoke.txt" || fail "GetKeyProtector returned the key protector: $(tail -c 800 "$out/invoke.txt")"
ok "wsl invokes GetKeyProtector and gets the key protector"

wsl invoke "$V2/Msvm_SecurityService" RestoreLastKnownGoodKeyProtector "SecuritySettingData=RFILE:$out/ssd.xml" >"$out/restore.txt" 2>&1 || fail "wsl invoke ran"
grep -q '<p:ReturnValue>32775</p:ReturnValue>' "$out/restore.txt" || fail "Restore without last known good is 32775: $(tail -c 800 "$out/restore.txt")"
ok "wsl invokes RestoreLastKnownGoodKeyProtector and gets 32775"
echo "wsl scenario passed"
