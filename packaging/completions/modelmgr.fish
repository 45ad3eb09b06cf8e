# fish completion for modelmgr: candidates from `modelmgr __complete` (the CLI's own command table, the
# model catalog, the HF cache).
function __modelmgr_complete
    set -l tokens (commandline -opc) (commandline -ct)
    set -l program $tokens[1]
    set -e tokens[1]
    for c in ($program __complete $tokens 2>/dev/null)
        if test "$c" = __files__
            __fish_complete_path (commandline -ct)
        else
            echo $c
        end
    end
end
complete -c modelmgr -f -a '(__modelmgr_complete)'
