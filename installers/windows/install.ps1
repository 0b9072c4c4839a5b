<#
.SYNOPSIS
    Install traceagent for the current user from this checkout (no administrator rights needed).

.DESCRIPTION
    - Installs the package with pipx or `uv tool` if present, else into a venv in
      %LOCALAPPDATA%\traceagent\venv with a `traceagent` command in %LOCALAPPDATA%\traceagent\bin
      (added to your user PATH).
    - Adds a Start-menu shortcut with the traceagent icon.
    - Starts traceagent at login: HKCU\...\CurrentVersion\Run value "traceagent", written by
      `python -m traceagent.autostart enable` (the same code as `traceagent autostart enable` and the
      tray's "Start at login"). Turning it off in Task Manager > Startup apps is respected.
    Undo with uninstall.ps1. See installers\README.md.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File installers\windows\install.ps1
#>
[CmdletBinding()]
param(
    [ValidateSet("auto", "pipx", "uv", "venv")] [string] $Method = "auto",
    [switch] $Headless,
    [switch] $NoAutostart,
    [switch] $NoStart
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version 3.0

$App = "traceagent"
$Repo = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path
$DataDir = Join-Path $env:LOCALAPPDATA $App
$Venv = Join-Path $DataDir "venv"
$BinDir = Join-Path $DataDir "bin"
$Record = Join-Path $DataDir "installer.json"
$Shortcut = Join-Path ([Environment]::GetFolderPath("Programs")) "$App.lnk"
$IconPng = Join-Path $Repo "assets\icons\traceagent-256.png"
$IconIco = Join-Path $DataDir "$App.ico"

function Say([string] $Message) { Write-Host "traceagent: $Message" }
# Native commands run with "Continue": under "Stop", Windows PowerShell 5.1 turns any stderr line
# (pip's warnings) into a terminating error. Failure is judged by the exit code instead.
function Invoke-Checked([string] $Exe, [string[]] $Arguments) {
    $ErrorActionPreference = "Continue"
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "failed ($LASTEXITCODE): $Exe $($Arguments -join ' ')" }
}

if (-not (Test-Path (Join-Path $Repo "pyproject.toml"))) { throw "run this from a traceagent checkout" }

# A Python 3.10+: $env:PYTHON, the py launcher, or python on PATH (not the Microsoft Store stub).
function Find-Python {
    $ErrorActionPreference = "Continue"
    $probe = "import sys; assert sys.version_info >= (3, 10); print(sys.executable)"
    $candidates = @()
    if ($env:PYTHON) { $candidates += , @($env:PYTHON) }
    $candidates += , @("py", "-3")
    $candidates += , @("python")
    foreach ($c in $candidates) {
        if (-not (Get-Command $c[0] -ErrorAction SilentlyContinue)) { continue }
        $rest = @($c | Select-Object -Skip 1)
        $exe = & $c[0] @rest -c $probe 2>$null
        if ($LASTEXITCODE -eq 0 -and $exe) { return $exe.Trim() }
    }
    throw "Python 3.10 or newer is needed: https://www.python.org/downloads/windows/ (or set `$env:PYTHON)"
}

$SysPy = Find-Python
if ($Method -eq "auto") {
    if (Get-Command pipx -ErrorAction SilentlyContinue) { $Method = "pipx" }
    elseif (Get-Command uv -ErrorAction SilentlyContinue) { $Method = "uv" }
    else { $Method = "venv" }
}
New-Item -ItemType Directory -Force -Path $DataDir | Out-Null

switch ($Method) {
    "pipx" {
        Say "installing with pipx"
        Invoke-Checked pipx @("install", "--force", "--python", $SysPy, $Repo)
        $venvs = (& pipx environment --value PIPX_LOCAL_VENVS).Trim()
        $bin = (& pipx environment --value PIPX_BIN_DIR).Trim()
        $Py = Join-Path $venvs "$App\Scripts\python.exe"
        $Bin = Join-Path $bin "$App.exe"
    }
    "uv" {
        Say "installing with uv tool"
        Invoke-Checked uv @("tool", "install", "--force", "--python", $SysPy, $Repo)
        $Py = Join-Path (& uv tool dir).Trim() "$App\Scripts\python.exe"
        $Bin = Join-Path (& uv tool dir --bin).Trim() "$App.exe"
    }
    "venv" {
        Say "installing into $Venv"
        if (-not (Test-Path (Join-Path $Venv "Scripts\python.exe"))) { Invoke-Checked $SysPy @("-m", "venv", $Venv) }
        $Py = Join-Path $Venv "Scripts\python.exe"
        Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", $Repo)
        # A `traceagent` command without putting the venv's python.exe on PATH.
        New-Item -ItemType Directory -Force -Path $BinDir | Out-Null
        $Bin = Join-Path $BinDir "$App.cmd"
        Set-Content -Path $Bin -Encoding ASCII -Value "@`"%~dp0..\venv\Scripts\$App.exe`" %*"
        $userPath = [Environment]::GetEnvironmentVariable("Path", "User")
        if (-not $userPath) { $userPath = "" }
        if (($userPath -split ";") -notcontains $BinDir) {
            [Environment]::SetEnvironmentVariable("Path", (($userPath.TrimEnd(";"), $BinDir) -join ";").TrimStart(";"), "User")
            Say "added $BinDir to your user PATH (open a new terminal to use it)"
        }
    }
}
@{ method = $Method; python = $Py; bin = $Bin; venv = $(if ($Method -eq "venv") { $Venv } else { "" }) } |
    ConvertTo-Json | Set-Content -Path $Record -Encoding UTF8

$ErrorActionPreference = "Continue"
$version = & $Bin --version 2>$null
$ok = $LASTEXITCODE -eq 0
$ErrorActionPreference = "Stop"
if ($ok) { Say "installed: $version ($Bin)" }
else { Invoke-Checked $Py @("-c", "import traceagent; print('installed traceagent', traceagent.__version__)") }

# The command the shortcut runs is the one the start-at-login entry runs (pythonw or traceagentw: no console).
$cmdArgs = @("-m", "traceagent.autostart", "command", "--json")
if ($Headless) { $cmdArgs += "--headless" }
$command = @(& $Py @cmdArgs | ConvertFrom-Json)
if (Test-Path $IconPng) {
    Invoke-Checked $Py @("-c", "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])", $IconPng, $IconIco)
}
$shell = New-Object -ComObject WScript.Shell
$lnk = $shell.CreateShortcut($Shortcut)
$lnk.TargetPath = $command[0]
$lnk.Arguments = (@($command | Select-Object -Skip 1) | ForEach-Object { if ($_ -match '\s') { "`"$_`"" } else { $_ } }) -join " "
$lnk.WorkingDirectory = $env:USERPROFILE
$lnk.Description = "Mirror your coding agents' session traces to a Hugging Face bucket"
if (Test-Path $IconIco) { $lnk.IconLocation = "$IconIco,0" }
$lnk.Save()
Say "Start-menu shortcut: $Shortcut"

if (-not $NoAutostart) {
    $enableArgs = @("-m", "traceagent.autostart", "enable")
    if ($Headless) { $enableArgs += "--headless" }
    Invoke-Checked $Py $enableArgs
}
if (-not $NoStart) {
    # A second instance exits by itself if traceagent is already running.
    Start-Process -FilePath $command[0] -ArgumentList @($command | Select-Object -Skip 1) -WorkingDirectory $env:USERPROFILE
    Say "started"
}
Say "done. Uninstall with: powershell -ExecutionPolicy Bypass -File `"$PSScriptRoot\uninstall.ps1`""
