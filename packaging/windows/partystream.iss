; Party Stream installer for Windows (Inno Setup 6).
;
; Built by `python packaging/build.py windows`, which freezes the app with PyInstaller and then
; runs ISCC with the values below (the version comes from pyproject.toml, nowhere else):
;   /DAppVersion=<version> /DAppNumericVersion=<a.b.c.d> /DSourceDir=dist\PartyStream
;   /DIconFile=build\icons\partystream.ico /DOutputDir=dist /DOutputBase=PartyStream-...-setup
;   /DDefaultPort=8927 [/DSign=1 /Spssign=...]
;
; What it installs: the one-folder app under Program Files, a Start-menu entry, optionally a
; desktop shortcut, optionally "start when I sign in" (the same HKCU Run value the tray's own
; toggle writes, see desktop/autostart.py), and a Windows Firewall rule so phones on the
; network can reach the party. The uninstaller stops the app and removes all of that.

#ifndef AppVersion
  #error Build this with packaging/build.py windows: it passes the version and the paths.
#endif
#ifndef AppNumericVersion
  #define AppNumericVersion "0.0.0.0"
#endif
#ifndef DefaultPort
  #define DefaultPort "8927"
#endif

#define AppName "Party Stream"
#define AppExe "PartyStream.exe"
#define RunValue "PartyStream"
#define FirewallRule "Party Stream"

[Setup]
; Never change AppId: upgrades find the installed version through it.
AppId={{6C0F8E46-3C5B-4B8E-9F1A-5D2E7B1C9A40}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Party Stream
VersionInfoVersion={#AppNumericVersion}
VersionInfoProductName={#AppName}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Admin rights: the firewall rule and Program Files need them.
PrivilegesRequired=admin
UsedUserAreasWarning=no
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
OutputDir={#OutputDir}
OutputBaseFilename={#OutputBase}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes
RestartApplications=no
#ifdef Sign
SignTool=pssign
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "startup"; Description: "Start {#AppName} when I sign in (it waits in the tray)"; GroupDescription: "Start-up:"; Flags: unchecked
Name: "firewall"; Description: "Let phones on my home or work network connect (Windows Firewall, port {#DefaultPort} and up)"; GroupDescription: "Network:"
Name: "firewall\public"; Description: "Also on public networks (a venue's or hotel's Wi-Fi)"; Flags: unchecked

[InstallDelete]
; An upgrade replaces the frozen app whole: no stale modules from an older version.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "Host a silent disco: phones scan a QR code and listen"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; The same value the tray's "Start at login" writes, so both always agree.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "{#RunValue}"; ValueData: """{app}\{#AppExe}"""; Tasks: startup
; Removed on uninstall whether this installer or the tray created it.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: none; ValueName: "{#RunValue}"; Flags: uninsdeletevalue

[Run]
; Firewall: drop a rule left by an earlier install, then allow inbound TCP to the app (its
; front door on port {#DefaultPort} and the listener servers on the next ports; the rule is
; bound to the program rather than to fixed ports because the app moves to the next free
; ports when {#DefaultPort} is taken). Nothing on those ports can change the party.
Filename: "{sys}\netsh.exe"; Parameters: "advfirewall firewall delete rule name=""{#FirewallRule}"""; Flags: runhidden; StatusMsg: "Updating the Windows Firewall rule..."
Filename: "{sys}\netsh.exe"; Parameters: "advfirewall firewall add rule name=""{#FirewallRule}"" dir=in action=allow protocol=TCP program=""{app}\{#AppExe}"" profile=private,domain enable=yes"; Flags: runhidden; StatusMsg: "Allowing phones to connect..."; Tasks: firewall and not firewall\public
Filename: "{sys}\netsh.exe"; Parameters: "advfirewall firewall add rule name=""{#FirewallRule}"" dir=in action=allow protocol=TCP program=""{app}\{#AppExe}"" profile=any enable=yes"; Flags: runhidden; StatusMsg: "Allowing phones to connect..."; Tasks: firewall\public
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent runasoriginaluser

[UninstallRun]
; Stop the tray and its party processes first, so their files can be removed.
Filename: "{sys}\taskkill.exe"; Parameters: "/F /T /IM {#AppExe}"; Flags: runhidden; RunOnceId: "StopApp"
Filename: "{sys}\netsh.exe"; Parameters: "advfirewall firewall delete rule name=""{#FirewallRule}"""; Flags: runhidden; RunOnceId: "RemoveFirewallRule"

[Code]
function PrepareToInstall(var NeedsRestart: Boolean): String;
var
  ResultCode: Integer;
begin
  { A running tray (and its party processes) would keep the old files locked. }
  Exec(ExpandConstant('{sys}\taskkill.exe'), '/F /T /IM {#AppExe}', '', SW_HIDE,
       ewWaitUntilTerminated, ResultCode);
  Result := '';
end;
