<#
.SYNOPSIS
    Undo install.ps1: the start-at-login entry, the Start-menu shortcut, the package and the PATH entry.

.DESCRIPTION
    Settings and sync state are kept unless -Purge. The local bucket folder
    (%LOCALAPPDATA%\traceagent\bucket) is never deleted.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File installers\windows\uninstall.ps1 [-Purge]
#>
[CmdletBinding()]
param([switch] $Purge)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version 3.0

$App = "traceagent"
$DataDir = Join-Path $env:LOCALAPPDATA $App
$BinDir = Join-Path $DataDir "bin"
$Record = Join-Path $DataDir "installer.json"
$Shortcut = Join-Path ([Environment]::GetFolderPath("Programs")) "$App.lnk"
$RunKey = "HKCU:\Software\Microsoft\Windows\CurrentVersion\Run"
$ApprovedKey = "HKCU:\Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"

function Say([string] $Message) { Write-Host "traceagent: $Message" }

$info = $null
if (Test-Path $Record) { $info = Get-Content -Raw $Record | ConvertFrom-Json }
else { Say "no install record at $Record; removing what is found" }

$ErrorActionPreference = "Continue"  # native commands below may write to stderr; they are best effort
if ($info -and (Test-Path $info.python)) {
    if ($Purge -and (Test-Path $info.bin)) { & $info.bin logout *> $null }
    & $info.python -m traceagent.autostart disable
}
$ErrorActionPreference = "Stop"
# Also when the package is already gone: the same values traceagent.autostart writes.
Remove-ItemProperty -Path $RunKey -Name $App -ErrorAction SilentlyContinue
Remove-ItemProperty -Path $ApprovedKey -Name $App -ErrorAction SilentlyContinue
Remove-Item -Force -ErrorAction SilentlyContinue $Shortcut, (Join-Path $DataDir "$App.ico")

$ErrorActionPreference = "Continue"
if ($info) {
    switch ($info.method) {
        "pipx" { & pipx uninstall $App }
        "uv" { & uv tool uninstall $App }
        "venv" {
            if ($info.venv -and (Test-Path (Join-Path $info.venv "pyvenv.cfg"))) { Remove-Item -Recurse -Force $info.venv }
        }
    }
}
$ErrorActionPreference = "Stop"
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $BinDir, $Record
$userPath = [Environment]::GetEnvironmentVariable("Path", "User")
if ($userPath -and (($userPath -split ";") -contains $BinDir)) {
    [Environment]::SetEnvironmentVariable("Path", (($userPath -split ";" | Where-Object { $_ -and $_ -ne $BinDir }) -join ";"), "User")
}

if ($Purge -and (Test-Path $DataDir)) {
    # platformdirs on Windows keeps settings, state and logs all in %LOCALAPPDATA%\traceagent.
    Get-ChildItem -Force $DataDir | Where-Object { $_.Name -ne "bucket" } | Remove-Item -Recurse -Force
    Say "deleted settings, state and logs"
}
if ((Test-Path $DataDir) -and -not (Get-ChildItem -Force $DataDir)) { Remove-Item -Force $DataDir }
Say "uninstalled"
