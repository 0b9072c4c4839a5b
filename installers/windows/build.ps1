<#
.SYNOPSIS
    Build dist\traceagent\ (traceagent.exe + traceagentw.exe) with PyInstaller from this checkout.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File installers\windows\build.ps1
    # then copy dist\traceagent to %LOCALAPPDATA%\Programs\traceagent and run, once:
    #   %LOCALAPPDATA%\Programs\traceagent\traceagent.exe autostart enable
#>
[CmdletBinding()]
param([string] $Python = "py")
$ErrorActionPreference = "Stop"
Set-StrictMode -Version 3.0

$Repo = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path
$Build = Join-Path $Repo "build\windows"
$Venv = Join-Path $Build "venv"
$Py = Join-Path $Venv "Scripts\python.exe"

function Invoke-Checked([string] $Exe, [string[]] $Arguments) {
    $ErrorActionPreference = "Continue"
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "failed ($LASTEXITCODE): $Exe $($Arguments -join ' ')" }
}

Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $Build, (Join-Path $Repo "dist\traceagent")
New-Item -ItemType Directory -Force -Path $Build | Out-Null
if ($Python -eq "py") { Invoke-Checked py @("-3", "-m", "venv", $Venv) } else { Invoke-Checked $Python @("-m", "venv", $Venv) }
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "--upgrade", "pip")
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", $Repo, "pyinstaller>=6")

$png = Join-Path $Repo "assets\icons\traceagent-256.png"
if (Test-Path $png) {
    $env:TRACEAGENT_ICO = Join-Path $Build "traceagent.ico"
    Invoke-Checked $Py @("-c", "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])", $png, $env:TRACEAGENT_ICO)
}
Invoke-Checked $Py @("-m", "PyInstaller", "--noconfirm", "--clean", "--distpath", (Join-Path $Repo "dist"), "--workpath", (Join-Path $Build "work"), (Join-Path $PSScriptRoot "traceagent.spec"))
Invoke-Checked (Join-Path $Repo "dist\traceagent\traceagent.exe") @("--version")
Write-Host "built $(Join-Path $Repo 'dist\traceagent')"
