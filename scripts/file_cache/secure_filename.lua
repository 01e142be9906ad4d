-- werkzeug's secure_filename, as the KBase cache applied it to uploaded names: accents folded
-- to ASCII (NFKD, then non-ASCII dropped), "/" as a space, runs of whitespace as "_", anything
-- outside [A-Za-z0-9_.-] removed, "." and "_" stripped at both ends. Depot's fix: a name that
-- comes out empty becomes "file" (the original answered 500).
local M = {}

-- NFKD of the precomposed Latin letters, reduced to their ASCII base (what NFKD + ASCII keeps).
local folded = {
  ["À"] = "A", ["Á"] = "A", ["Â"] = "A", ["Ã"] = "A", ["Ä"] = "A", ["Å"] = "A", ["Ç"] = "C",
  ["È"] = "E", ["É"] = "E", ["Ê"] = "E", ["Ë"] = "E", ["Ì"] = "I", ["Í"] = "I", ["Î"] = "I",
  ["Ï"] = "I", ["Ñ"] = "N", ["Ò"] = "O", ["Ó"] = "O", ["Ô"] = "O", ["Õ"] = "O", ["Ö"] = "O",
  ["Ù"] = "U", ["Ú"] = "U", ["Û"] = "U", ["Ü"] = "U", ["Ý"] = "Y", ["à"] = "a", ["á"] = "a",
  ["â"] = "a", ["ã"] = "a", ["ä"] = "a", ["å"] = "a", ["ç"] = "c", ["è"] = "e", ["é"] = "e",
  ["ê"] = "e", ["ë"] = "e", ["ì"] = "i", ["í"] = "i", ["î"] = "i", ["ï"] = "i", ["ñ"] = "n",
  ["ò"] = "o", ["ó"] = "o", ["ô"] = "o", ["õ"] = "o", ["ö"] = "o", ["ù"] = "u", ["ú"] = "u",
  ["û"] = "u", ["ü"] = "u", ["ý"] = "y", ["ÿ"] = "y", ["Ā"] = "A", ["ā"] = "a", ["Ă"] = "A",
  ["ă"] = "a", ["Ą"] = "A", ["ą"] = "a", ["Ć"] = "C", ["ć"] = "c", ["Č"] = "C", ["č"] = "c",
  ["Ď"] = "D", ["ď"] = "d", ["Ē"] = "E", ["ē"] = "e", ["Ę"] = "E", ["ę"] = "e", ["Ě"] = "E",
  ["ě"] = "e", ["Ğ"] = "G", ["ğ"] = "g", ["Ī"] = "I", ["ī"] = "i", ["İ"] = "I", ["Ń"] = "N",
  ["ń"] = "n", ["Ň"] = "N", ["ň"] = "n", ["Ō"] = "O", ["ō"] = "o", ["Ő"] = "O", ["ő"] = "o",
  ["Ř"] = "R", ["ř"] = "r", ["Ś"] = "S", ["ś"] = "s", ["Ş"] = "S", ["ş"] = "s", ["Š"] = "S",
  ["š"] = "s", ["Ť"] = "T", ["ť"] = "t", ["Ū"] = "U", ["ū"] = "u", ["Ů"] = "U", ["ů"] = "u",
  ["Ű"] = "U", ["ű"] = "u", ["Ÿ"] = "Y", ["Ź"] = "Z", ["ź"] = "z", ["Ż"] = "Z", ["ż"] = "z",
  ["Ž"] = "Z", ["ž"] = "z",
}

local function to_ascii(name)
  -- Each UTF-8 sequence: folded if known, dropped if not ASCII.
  return (name:gsub("[\xC0-\xF7][\x80-\xBF]*", function(char) return folded[char] or "" end)
              :gsub("[\x80-\xFF]", ""))
end

function M.secure_filename(name)
  name = to_ascii(name):gsub("/", " ")
  local words = {}
  for word in name:gmatch("[^%s\28-\31]+") do words[#words + 1] = word end
  name = table.concat(words, "_"):gsub("[^%w_%.%-]", "")
  name = name:gsub("^[%._]+", ""):gsub("[%._]+$", "")
  if name == "" then return "file" end
  return name
end

return M
