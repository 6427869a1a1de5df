#include "runner/load/playbook.h"

namespace netplay {

const StepDef* Playbook::find_step(std::string_view id) const {
  for (const auto& s : steps)
    if (s.id == id) return &s;
  return nullptr;
}

const InputDef* Playbook::find_input(std::string_view n) const {
  for (const auto& i : inputs)
    if (i.name == n) return &i;
  return nullptr;
}

}  // namespace netplay
