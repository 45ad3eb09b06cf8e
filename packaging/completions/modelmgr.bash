# bash completion for modelmgr. The candidates come from `modelmgr __complete`, which reads them from the
# CLI's own command table, the model catalog and the HF cache, so this script never goes stale.
_modelmgr() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  # Words as the user typed them (COMP_WORDS splits at ':', which ID:QUANT and REPO:QUANT contain).
  local line=${COMP_LINE:0:COMP_POINT}
  local -a words
  read -r -a words <<<"$line"
  [[ $line == *[[:space:]] ]] && words+=("")
  local typed=${words[${#words[@]}-1]}
  local IFS=$'\n'
  local -a candidates
  candidates=($(command "${words[0]}" __complete "${words[@]:1}" 2>/dev/null))
  if [[ ${candidates[0]} == __files__ ]]; then
    candidates=("${candidates[@]:1}")
    candidates+=($(compgen -f -- "$typed"))
  fi
  COMPREPLY=("${candidates[@]}")
  # bash replaces only the part after the last ':' of the word: drop what is already typed before it.
  if [[ $typed == *:* && $cur != "$typed" ]]; then
    local prefix=${typed%"${typed##*:}"}
    COMPREPLY=("${COMPREPLY[@]#"$prefix"}")
  fi
}
complete -o default -F _modelmgr modelmgr
